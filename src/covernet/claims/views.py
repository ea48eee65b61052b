"""What the claim pages show, worked out from a claim's JSON view (``api.claim_body``) and
the board and report: the parcel-style tracker, the statutory dates, the "how we got to
¥X" steps and the stage-report chart.  Pure: no database, labels in the page language.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from covernet.claims import clocks as claim_clocks
from covernet.claims.rules import ClaimRules
from covernet.core import i18n
from covernet.core.money import format_fen

# The tracker's slots: 报案 → 受理 → 材料审核 → (调查) → 核定 → 审批/拒赔 → 赔付 → 结案.
SLOTS = (
    "reported",
    "accepted",
    "documents",
    "investigating",
    "assessed",
    "decision",
    "paid",
    "closed",
)
SLOT_OF = {"approved": "decision", "declined": "decision"}
CLOCK_NAMES = ("decision", "payment", "denial_notice", "advance_payment")
CLOCK_STATES = ("running", "near", "breached", "met", "met_late")
WAITING = ("customer", "insurer", "nobody")
STEP_CODES = ("claimed", "deductible", "copay", "coverage_limit", "plan_limit")
REASONS = (
    "not_in_force_on_incident",
    "before_effective_date",
    "after_end_date",
    "policy_cancelled_before_incident",
    "policy_surrendered_before_incident",
    "in_waiting_period",
    "unknown_coverage",
    "cause_not_covered",
    "coverage_ended",
    "nothing_claimed",
    "nothing_payable_after_deductible",
    "limit_exhausted",
    "capped_by_coverage_limit",
    "capped_by_plan_limit",
)
CAUSES = ("accident", "illness", "event")


def t(key: str, lang: str, **params: Any) -> str:
    return i18n.translate(key, lang, **params)


@dataclass(frozen=True)
class Step:
    code: str
    label: str
    state: str  # done | current | upcoming
    failed: bool
    at: datetime | None


def _last_entered(timeline: Iterable[Mapping[str, Any]]) -> dict[str, datetime]:
    entered: dict[str, datetime] = {}
    for event in timeline:
        at = event["at"]
        moment = datetime.fromisoformat(at) if isinstance(at, str) else at
        entered[SLOT_OF.get(event["stage"], event["stage"])] = moment
    return entered


def tracker(body: Mapping[str, Any], lang: str) -> list[Step]:
    """The stages as a parcel tracker: what is done, where the claim is, what comes."""
    stage = body["stage"]
    timeline = body["timeline"]
    visited = {SLOT_OF.get(e["stage"], e["stage"]) for e in timeline}
    declined = stage == "declined" or (
        stage == "closed" and body.get("decision_reason") and "paid" not in visited
    )
    slots = [
        s
        for s in SLOTS
        if not (s == "investigating" and s not in visited and stage != "investigating")
        and not (s == "paid" and declined)
    ]
    if stage == "withdrawn":
        slots = [s for s in slots if s in visited] + ["withdrawn"]
    current = slots.index(SLOT_OF.get(stage, stage))
    entered = _last_entered(timeline)
    steps = []
    for index, slot in enumerate(slots):
        state = "done" if index < current else "current" if index == current else "upcoming"
        label_key = "claim.track.declined" if slot == "decision" and declined else None
        steps.append(
            Step(
                code=slot,
                label=t(label_key or f"claim.track.{slot}", lang),
                state=state,
                failed=bool(label_key) or slot == "withdrawn",
                at=entered.get(slot) if state != "upcoming" else None,
            )
        )
    return steps


def stage_name(rules: ClaimRules, code: str, lang: str) -> str:
    stage = rules.stage(code)
    return stage.en if lang == "en" else stage.zh


def timeline(
    body: Mapping[str, Any], rules: ClaimRules, lang: str, *, staff: bool = False
) -> list[dict[str, Any]]:
    """Newest first, with the customer note (and, for staff, the internal one)."""
    out = []
    for event in reversed(body["timeline"]):
        stage = rules.stage(event["stage"])
        written = event["note"]
        note = written or (stage.note_en if lang == "en" else stage.note_zh)
        original = None
        if lang == "en":  # the notes are written in Chinese: the stage's English note first
            note = stage.note_en
            original = written if written and written != stage.note_zh else None
        at = event["at"]
        out.append(
            {
                "at": datetime.fromisoformat(at) if isinstance(at, str) else at,
                "stage": event["stage"],
                "name": stage.en if lang == "en" else stage.zh,
                "note": note,
                "original": original,
                "actor": t(f"claim.actor.{event['actor']}", lang),
                "internal": event.get("internal_note") if staff else None,
            }
        )
    return out


def clock_rows(
    states: Iterable[Mapping[str, Any] | claim_clocks.ClockState],
    rules: ClaimRules,
    lang: str,
) -> list[dict[str, Any]]:
    """The dates the law gives (R21); the advance-payment clock only while it can run."""
    days = {
        "decision": rules.clocks.decision_days,
        "payment": rules.clocks.payment_days,
        "denial_notice": rules.clocks.denial_notice_days,
        "advance_payment": rules.clocks.advance_payment_days,
    }
    rows = []
    for raw in states:
        c = raw if isinstance(raw, Mapping) else raw.__dict__
        if c["name"] == "advance_payment" and c["state"] in ("met", "met_late"):
            continue
        due = c["due"] if isinstance(c["due"], date) else date.fromisoformat(c["due"])
        started = (
            c["started"] if isinstance(c["started"], date) else date.fromisoformat(c["started"])
        )
        done = c["done"]
        if isinstance(done, str):
            done = date.fromisoformat(done)
        rows.append(
            {
                "name": c["name"],
                "label": t(f"claim.clock.{c['name']}", lang),
                "rule": t(f"claim.clock_rule.{c['name']}", lang, days=days[c["name"]]),
                "started": started,
                "due": due,
                "done": done,
                "state": c["state"],
                "state_label": t(f"claim.clock_state.{c['state']}", lang),
            }
        )
    return rows


def worst_clock(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The clock a handler should look at first: breached, then near, then running."""
    rank = {"breached": 0, "near": 1, "running": 2}
    open_ = [r for r in rows if r["state"] in rank]
    if not open_:
        return None
    return min(open_, key=lambda r: (rank[r["state"]], r["due"]))


def assessment_steps(assessment: Mapping[str, Any] | None, lang: str) -> list[dict[str, Any]]:
    """ "How we got to ¥X": one line per step, with what it took off."""
    if not assessment:
        return []
    rows = []
    for step in assessment.get("steps", []):
        code = step["code"]
        params: dict[str, Any] = {}
        if code == "deductible":
            params["limit"] = format_fen(step.get("limit_fen") or 0)
        elif code == "copay":
            params["percent"] = step.get("percent") or 0
        elif code in ("coverage_limit", "plan_limit"):
            params["limit"] = format_fen(step.get("limit_fen") or 0)
        rows.append(
            {
                "code": code,
                "label": t(f"claim.step.{code}", lang, **params),
                "reduction": format_fen(step.get("reduction_fen") or 0),
                "reduced": bool(step.get("reduction_fen")),
                "amount": format_fen(step["amount_fen"]),
            }
        )
    return rows


def assessment_reasons(assessment: Mapping[str, Any] | None, lang: str) -> list[str]:
    if not assessment:
        return []
    return [t(f"claim.reason.{r}", lang) for r in assessment.get("reasons", []) if r in REASONS]


# The stage report's chart ---------------------------------------------------------------

CHART_WIDTH = 360
LABEL_WIDTH = 72
BAR_WIDTH = 186
ROW_HEIGHT = 36
TOP = 8


def report_chart(rows: Iterable[Any], rules: ClaimRules, lang: str) -> dict[str, Any]:
    """Horizontal bars (p90 light, median dark) per stage with data, laid out for SVG."""
    found = list(rows)
    top = max((r.p90_hours for r in found), default=0.0) or 1.0
    bars = []
    for index, row in enumerate(found):
        y = TOP + index * ROW_HEIGHT
        bars.append(
            {
                "stage": row.stage,
                "label": stage_name(rules, row.stage, lang),
                "y": y,
                "text_y": y + 17,
                "p90_width": max(1.0, round(BAR_WIDTH * row.p90_hours / top, 1)),
                "median_width": max(1.0, round(BAR_WIDTH * row.median_hours / top, 1)),
                "median": row.median_hours,
                "p90": row.p90_hours,
                "count": row.count,
                "value": t("claim.report.bar", lang, median=row.median_hours, p90=row.p90_hours),
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": TOP * 2 + ROW_HEIGHT * len(bars),
        "label_width": LABEL_WIDTH,
        "bar_x": LABEL_WIDTH + 4,
        "value_x": LABEL_WIDTH + 8 + BAR_WIDTH,
        "bars": bars,
    }


def all_keys() -> list[str]:
    """Every message key these pages build at run time (checked by the tests)."""
    keys = [f"claim.track.{s}" for s in (*SLOTS, "withdrawn", "declined")]
    keys += [f"claim.clock.{c}" for c in CLOCK_NAMES]
    keys += [f"claim.clock_rule.{c}" for c in CLOCK_NAMES]
    keys += [f"claim.clock_state.{s}" for s in CLOCK_STATES]
    keys += [f"claim.waiting.{w}" for w in WAITING]
    keys += [f"claim.waits.{w}" for w in WAITING] + ["claim.next.upload"]
    keys += [f"claim.step.{s}" for s in STEP_CODES]
    keys += [f"claim.reason.{r}" for r in REASONS]
    keys += [f"claim.cause.{c}" for c in CAUSES]
    keys += [f"claim.actor.{a}" for a in ("customer", "staff", "system", "partner")]
    return keys
