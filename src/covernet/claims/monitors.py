"""Monitor: the statutory clocks of open claims (R21, 保险法 Art 22–25).

An open claim with a breached clock (no decision 30 days after complete documents, no
payment 10 days after agreement, …) is a breach; one within the near-breach days of a
clock's end is a warning.  Items name the claim by its number and link to its console
page; breached ones first (the board's order).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from covernet.claims import board, rules
from covernet.compliance import monitors

KEY = "claims_clocks"
HREF = "/console/claims"
STATES = {"breached": "clock_breached", "near": "clock_near"}


@monitors.register(KEY, order=80, regulation="R21", href=HREF)
def claims_clocks(db: Session, today: date) -> monitors.Figure:
    ruleset = rules.current()
    rows = board.board(db, today)
    items: list[monitors.Item] = []
    breached = near = 0
    for row in rows:
        urgent = [c for c in row.clocks if c.state in STATES]
        if not urgent:
            continue
        worst = min(urgent, key=lambda c: (c.state != "breached", c.due))
        if worst.state == "breached":
            breached += 1
        else:
            near += 1
        if len(items) < monitors.MAX_ITEMS:
            items.append(
                monitors.Item(
                    label=row.claim.claim_no,
                    href=f"{HREF}/{row.claim.id}",
                    due=worst.due,
                    state=STATES[worst.state],
                    detail=f"claim.clock.{worst.name}",
                )
            )
    status: monitors.Status = "breach" if breached else "warning" if near else "ok"
    clocks = ruleset.clocks
    return monitors.Figure(
        key=KEY,
        regulation="R21",
        value=breached,
        total=len(rows),
        status=status,
        thresholds={
            "decision_days": clocks.decision_days,
            "payment_days": clocks.payment_days,
            "denial_notice_days": clocks.denial_notice_days,
            "near_days": clocks.near_breach_days,
        },
        href=HREF,
        items=items,
    )
