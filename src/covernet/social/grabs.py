"""Grabbing red envelope shares: one grab per person, never more grabs than shares,
whatever the concurrency or the number of app processes.

:func:`grab_many` takes any number of grabs (the API coalesces the concurrent grabs of a
process into one call, :mod:`covernet.core.coalesce`) and answers each one: in one unit
of work it reads the envelopes and the grabbers' earlier shares with one query each and
claims the free shares of every envelope with one statement (PostgreSQL: ``FOR UPDATE
SKIP LOCKED`` per envelope inside a single ``UPDATE … RETURNING``; SQLite, whose one
writer needs no row locks: one ``UPDATE`` per grab).  The unique (envelope, grabber)
index is the last word on one grab per person: a person who wins a race in another
process makes the statement fail, and the caller then handles each grab on its own.

Shares still locked by another process's grabs in flight are tried again for a few
milliseconds; an envelope with no free share left is marked ``sold_out``, which later
grabs (and this process's memory, :data:`SOLD_OUT`) answer without touching its shares.
A single grab (:func:`grab`, :func:`try_grab`) is a batch of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.core import clock
from covernet.core.db import is_postgres, pause
from covernet.core.errors import Conflict, CovernetError, NotFound
from covernet.identity.access import Principal
from covernet.social.models import EnvelopeStatus, RedEnvelope, RedEnvelopeShare
from covernet.social.service import hours

# Envelopes this process has seen sold out.  A share never goes back to the pool (an
# expired one is refunded), so sold out is for good and later grabs need no query.
SOLD_OUT: set[str] = set()
SOLD_OUT_MAX = 100_000
RETRIES = 5  # rounds for shares locked by grabs in flight elsewhere (2, 4 … 32 ms)

SHARES: Table = RedEnvelopeShare.__table__  # type: ignore[assignment]


def remember_sold_out(envelope_id: str) -> None:
    if len(SOLD_OUT) >= SOLD_OUT_MAX:
        SOLD_OUT.clear()
    SOLD_OUT.add(envelope_id)


def sold_out_error() -> Conflict:
    return Conflict("every share of this envelope has been grabbed", code="sold_out")


@dataclass(frozen=True)
class Grabbed:
    """A share just grabbed: its id is the grab's id."""

    id: str
    envelope_id: str
    premium_fen: int
    sum_insured_fen: int
    hold_until: datetime | None


# One outcome per grab: the share, None for sold out (an answer: the envelope's flag
# commits with it), or the error that refuses it.
Outcome = Grabbed | None | CovernetError


def grab(db: Session, who: Principal, envelope_id: str) -> Grabbed:
    """Claim one share for ``who``, or raise (``sold_out``, ``already_grabbed``, …)."""
    share = try_grab(db, who, envelope_id)
    if share is None:
        raise sold_out_error()
    return share


def try_grab(db: Session, who: Principal, envelope_id: str) -> Grabbed | None:
    """Like :func:`grab`, but sold out is an answer (``None``), not an error."""
    try:
        outcome = grab_many(db, [(who, envelope_id)])[0]
    except IntegrityError:  # the same person's grab in another request won the race
        raise Conflict("you already grabbed this envelope", code="already_grabbed") from None
    if isinstance(outcome, CovernetError):
        raise outcome
    return outcome


def grab_many(db: Session, grabs: Sequence[tuple[Principal, str]]) -> list[Outcome]:
    """Claim one share for each (person, envelope); an outcome for each, in order.

    Raises only what the database raises (another process's grab by the same person won
    the unique index, a lost connection); then nothing of the batch is kept."""
    now = clock.now()
    outcomes: list[Outcome] = [None] * len(grabs)
    envelopes = {
        row.id: row
        for row in db.execute(
            select(*_ENVELOPE_FACTS).where(RedEnvelope.id.in_(list({env for _, env in grabs})))
        )
    }
    wanted: dict[tuple[str, str], int] = {}  # (envelope, person) -> the grab asking
    for index, (who, envelope_id) in enumerate(grabs):
        assert who.user_id is not None
        try:
            if _grabbable(envelopes.get(envelope_id), who, now):
                if (envelope_id, who.user_id) in wanted:  # a double tap in the same batch
                    raise Conflict("you already grabbed this envelope", code="already_grabbed")
                wanted[(envelope_id, who.user_id)] = index
        except CovernetError as error:
            outcomes[index] = error
    for (envelope_id, user_id), grab_id in _earlier(db, wanted).items():
        outcomes[wanted.pop((envelope_id, user_id))] = Conflict(
            "you already grabbed this envelope",
            code="already_grabbed",
            detail={"grab_id": grab_id},
        )
    hold = now + hours("red_envelope_hold_hours")
    for attempt in range(RETRIES + 1):
        if not wanted:
            break
        if attempt:
            pause(0.001 * 2**attempt)  # the free shares were locked by grabs in flight
        for share in _claim(db, list(wanted), now, hold):
            outcomes[wanted.pop((share.envelope_id, _grabber(share)))] = share
        if not wanted:
            break
        left = {env for env, _ in wanted} - _with_free_shares(db, {env for env, _ in wanted})
        if left:  # none free any more (not merely locked by grabs in flight)
            db.execute(
                update(RedEnvelope)
                .where(RedEnvelope.id.in_(list(left)), RedEnvelope.sold_out.is_(False))
                .values(sold_out=True)
            )
            for envelope_id in left:
                remember_sold_out(envelope_id)
            for key in [key for key in wanted if key[0] in left]:
                outcomes[wanted.pop(key)] = None
    for index in wanted.values():
        outcomes[index] = Conflict("the envelope is busy; try again", code="try_again")
    return outcomes


# What a grab needs to know of its envelope (plain columns, not the ORM entity).
_ENVELOPE_FACTS = (
    RedEnvelope.id,
    RedEnvelope.sender_id,
    RedEnvelope.status,
    RedEnvelope.expires_at,
    RedEnvelope.sold_out,
)


def _grabbable(envelope: Any, who: Principal, now: datetime) -> bool:
    """True if ``who`` may try for a share of ``envelope``; False if it is sold out."""
    if envelope is None:
        raise NotFound("no such red envelope", code="unknown_envelope")
    if envelope.sender_id == who.user_id:
        raise Conflict("you cannot grab your own red envelope", code="own_envelope")
    if envelope.status != EnvelopeStatus.open.value:
        if envelope.status == EnvelopeStatus.closed.value:
            raise sold_out_error()
        raise Conflict(f"the envelope is {envelope.status}", code="envelope_not_open")
    if envelope.expires_at is not None and clock.as_utc(envelope.expires_at) <= now:
        raise Conflict("the envelope has expired", code="envelope_expired")
    if envelope.sold_out:
        remember_sold_out(envelope.id)
        return False
    return True


def _earlier(db: Session, wanted: dict[tuple[str, str], int]) -> dict[tuple[str, str], str]:
    """(envelope, person) -> the share they already hold, among ``wanted``."""
    if not wanted:
        return {}
    rows = db.execute(
        select(SHARES.c.envelope_id, SHARES.c.grabbed_by, SHARES.c.id).where(
            tuple_(SHARES.c.envelope_id, SHARES.c.grabbed_by).in_(list(wanted))
        )
    )
    return {(env, person): share for env, person, share in rows}


_TYPED = [
    SHARES.c[name]
    for name in ("id", "envelope_id", "grabbed_by", "premium_fen", "sum_insured_fen", "hold_until")
]


def _claiming(sql: str) -> Any:
    """A claim statement: its times bound as the columns store them, its rows typed."""
    return (
        text(sql)
        .bindparams(
            bindparam("now", type_=SHARES.c.grabbed_at.type),
            bindparam("hold", type_=SHARES.c.hold_until.type),
        )
        .columns(*_TYPED)
    )


# Every envelope's first free shares, locked (skipping those other grabs hold), handed
# out in seq order to the envelope's grabbers in the order they asked.
_CLAIM_MANY_PG = _claiming(
    "WITH want AS ("
    " SELECT w.env, w.who, row_number() OVER (PARTITION BY w.env ORDER BY w.ord) AS n"
    " FROM unnest(CAST(:envs AS varchar[]), CAST(:whos AS varchar[]))"
    " WITH ORDINALITY AS w(env, who, ord)),"
    " wanted AS (SELECT env, count(*) AS k FROM want GROUP BY env),"
    " picked AS ("
    " SELECT wanted.env, f.id, row_number() OVER (PARTITION BY wanted.env ORDER BY f.seq) AS n"
    " FROM wanted CROSS JOIN LATERAL ("
    "  SELECT x.id, x.seq FROM red_envelope_shares x"
    "  WHERE x.envelope_id = wanted.env AND x.grabbed_by IS NULL AND x.status = 'available'"
    "  ORDER BY x.seq LIMIT wanted.k FOR UPDATE SKIP LOCKED) AS f)"
    " UPDATE red_envelope_shares AS s"
    " SET grabbed_by = want.who, grabbed_at = :now, hold_until = :hold, status = 'held'"
    " FROM picked JOIN want ON want.env = picked.env AND want.n = picked.n"
    " WHERE s.id = picked.id"
    " RETURNING s.id, s.envelope_id, s.grabbed_by, s.premium_fen,"
    " s.sum_insured_fen, s.hold_until"
)
_CLAIM_ONE_SQLITE = _claiming(
    "UPDATE red_envelope_shares SET grabbed_by = :who, grabbed_at = :now, "
    "hold_until = :hold, status = 'held' "
    "WHERE id = (SELECT id FROM red_envelope_shares WHERE envelope_id = :env "
    "AND grabbed_by IS NULL AND status = 'available' ORDER BY seq LIMIT 1) "
    "AND grabbed_by IS NULL "
    "RETURNING id, envelope_id, grabbed_by, premium_fen, sum_insured_fen, hold_until"
)


@dataclass(frozen=True)
class _Claimed(Grabbed):
    grabbed_by: str


def _grabber(share: Grabbed) -> str:
    assert isinstance(share, _Claimed)
    return share.grabbed_by


def _claim(
    db: Session, wanted: list[tuple[str, str]], now: datetime, hold: datetime
) -> list[_Claimed]:
    if is_postgres(db):
        rows: list[Any] = list(
            db.execute(
                _CLAIM_MANY_PG,
                {
                    "envs": [env for env, _ in wanted],
                    "whos": [who for _, who in wanted],
                    "now": now,
                    "hold": hold,
                },
            )
        )
    else:
        rows = []
        for env, who in wanted:
            row = db.execute(
                _CLAIM_ONE_SQLITE, {"env": env, "who": who, "now": now, "hold": hold}
            ).first()
            if row is not None:
                rows.append(row)
    return [
        _Claimed(
            id=share_id,
            envelope_id=env,
            premium_fen=premium,
            sum_insured_fen=sum_insured,
            hold_until=held,
            grabbed_by=who,
        )
        for share_id, env, who, premium, sum_insured, held in rows
    ]


def _with_free_shares(db: Session, envelope_ids: set[str]) -> set[str]:
    """The envelopes that still have a share nobody has grabbed (free or locked by a
    grab in flight)."""
    rows = db.execute(
        select(SHARES.c.envelope_id)
        .where(
            SHARES.c.envelope_id.in_(list(envelope_ids)),
            SHARES.c.status == "available",
            SHARES.c.grabbed_by.is_(None),
        )
        .distinct()
    )
    return {row[0] for row in rows}
