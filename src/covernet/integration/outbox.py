"""The outbox: events written in the transaction that causes them, delivered after it
commits by any number of workers (R19).

* :func:`enqueue` adds a row in the caller's transaction: a rolled-back issuance leaves
  no event behind, a committed one always has its event.
* :func:`claim` takes due rows for one worker in a short transaction of its own: on
  PostgreSQL ``FOR UPDATE SKIP LOCKED``, so concurrent claimers never wait for each other
  nor take the same row; on SQLite the database's single writer serialises claimers.
  A claim is a lease (``claimed_by``, ``claimed_until``): a worker that dies mid-batch
  leaves rows that come back when the lease ends (``COVERNET_OUTBOX_LEASE_SECONDS``).
  Each claim counts as an attempt, so a row that crashes its workers dies too.
* :func:`deliver_batch` claims, sends each row through its insurer's adapter with no
  database transaction open, then settles each row in its own transaction: delivered;
  or another attempt after ``COVERNET_OUTBOX_RETRY_SECONDS`` doubling per attempt (at
  most an hour); or, after ``COVERNET_OUTBOX_MAX_ATTEMPTS``, ``dead`` (audited).

Delivery is at least once: a worker whose lease ran out before it heard back may see
the row sent again by another.  The insurer dedupes by the event id, the outbox id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.db import is_postgres, unit_of_work
from covernet.integration.insurers import DeliveryFailed, Event, Poster, adapter_for
from covernet.integration.models import OutboxRow, OutboxStatus, OutboxTopic

log = logging.getLogger("covernet.integration.outbox")

BACKOFF_MAX_SECONDS = 3600
# Stop sending a claimed row this long before its lease ends (another worker may have it).
LEASE_MARGIN_SECONDS = 5


def enqueue(
    db: Session, topic: str, *, insurer_code: str, subject_id: str, payload: dict[str, Any]
) -> OutboxRow:
    """Add an event in the caller's transaction (flushed, never committed here)."""
    OutboxTopic(topic)  # only known topics: a typo must not become an undeliverable row
    row = OutboxRow(
        topic=topic,
        insurer_code=insurer_code,
        subject_id=subject_id,
        payload=payload,
        status=OutboxStatus.pending.value,
        attempts=0,
        next_attempt_at=clock.now(),
    )
    db.add(row)
    db.flush()
    return row


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failure: base, 2×base, 4×base … at most 1 h."""
    base = get_settings().outbox_retry_seconds
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS))


@dataclass(frozen=True)
class Claimed:
    event: Event
    attempts: int
    claimed_until: datetime


def _write_lock(db: Session) -> None:
    """SQLite: take the database's write lock before reading, so a read-then-write never
    meets a snapshot another writer made stale (PostgreSQL locks rows instead)."""
    if not is_postgres(db):
        db.execute(
            update(OutboxRow)
            .where(OutboxRow.id == "")
            .values(attempts=OutboxRow.attempts)
            .execution_options(synchronize_session=False)
        )


def claim(db: Session, worker_id: str, limit: int) -> list[Claimed]:
    """Lease up to ``limit`` due rows to ``worker_id`` (the caller commits at once)."""
    _write_lock(db)
    now = clock.now()
    until = now + timedelta(seconds=get_settings().outbox_lease_seconds)
    stmt = (
        select(OutboxRow)
        .where(
            OutboxRow.status == OutboxStatus.pending.value,
            OutboxRow.next_attempt_at <= now,
            or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until <= now),
        )
        .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
        .limit(limit)
    )
    if is_postgres(db):
        stmt = stmt.with_for_update(skip_locked=True)
    claimed = []
    for row in db.scalars(stmt):
        row.claimed_by, row.claimed_until = worker_id, until
        row.attempts += 1
        claimed.append(
            Claimed(
                Event(row.id, row.topic, row.insurer_code, row.created_at, dict(row.payload)),
                row.attempts,
                until,
            )
        )
    db.flush()
    return claimed


def mark_delivered(db: Session, event_id: str) -> bool:
    """The insurer took it: delivered, whoever holds the lease now."""
    done = db.execute(
        update(OutboxRow)
        .where(OutboxRow.id == event_id, OutboxRow.status == OutboxStatus.pending.value)
        .values(
            status=OutboxStatus.delivered.value,
            delivered_at=clock.now(),
            last_error=None,
            claimed_by=None,
            claimed_until=None,
            next_attempt_at=None,
        )
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def mark_failed(db: Session, event_id: str, worker_id: str, reason: str) -> str | None:
    """Another attempt later, or dead after the last one.  Only the lease holder may
    do this (a lost lease means the row is someone else's now).  Returns the new
    status, or None when the row was not ours any more."""
    _write_lock(db)
    stmt = select(OutboxRow).where(
        OutboxRow.id == event_id,
        OutboxRow.status == OutboxStatus.pending.value,
        OutboxRow.claimed_by == worker_id,
    )
    if is_postgres(db):
        stmt = stmt.with_for_update()
    row = db.scalar(stmt)
    if row is None:
        return None
    now = clock.now()
    row.last_error = reason[:200]
    row.claimed_by = row.claimed_until = None
    if row.attempts >= get_settings().outbox_max_attempts:
        row.status, row.next_attempt_at = OutboxStatus.dead.value, None
        audit.record(
            db,
            "outbox.dead",
            subject_type="outbox",
            subject_id=row.id,
            detail={
                "topic": row.topic,
                "insurer_code": row.insurer_code,
                "subject_id": row.subject_id,
                "attempts": row.attempts,
                "last_error": row.last_error,
            },
        )
    else:
        row.next_attempt_at = now + backoff(row.attempts)
    db.flush()
    return row.status


@dataclass
class BatchReport:
    claimed: int = 0
    delivered: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # lease about to end: left to others


@contextmanager
def _client(client: Poster | None) -> Iterator[Poster]:
    if client is not None:
        yield client
        return
    with httpx.Client() as own:
        yield own


def deliver_batch(worker_id: str, *, limit: int = 20, client: Poster | None = None) -> BatchReport:
    """Claim up to ``limit`` due rows and deliver each; see the module's docstring.

    ``client`` is the HTTP client the webhook adapter posts with (tests pass the app's
    TestClient); by default one httpx client for the batch.
    """
    report = BatchReport()
    with unit_of_work() as db:
        batch = claim(db, worker_id, limit)
    report.claimed = len(batch)
    if not batch:
        return report
    with _client(client) as poster:
        for item in batch:
            event = item.event
            if clock.now() >= item.claimed_until - timedelta(seconds=LEASE_MARGIN_SECONDS):
                report.skipped.append(event.id)
                continue
            try:
                adapter_for(event.insurer_code, poster).send(event)
            except DeliveryFailed as exc:
                with unit_of_work() as db:
                    status = mark_failed(db, event.id, worker_id, exc.reason)
                if status == OutboxStatus.dead.value:
                    report.dead.append(event.id)
                    log.warning("outbox %s is dead after %d attempts", event.id, item.attempts)
                elif status is not None:
                    report.retrying.append(event.id)
                log.info("outbox %s not delivered: %s", event.id, exc.reason)
                continue
            with unit_of_work() as db:
                mark_delivered(db, event.id)
            report.delivered.append(event.id)
    return report


def requeue(db: Session, event_id: str, *, by: audit.Actor = audit.SYSTEM) -> OutboxRow | None:
    """Give a dead row a fresh set of attempts (after the cause was fixed); audited."""
    _write_lock(db)
    stmt = select(OutboxRow).where(
        OutboxRow.id == event_id, OutboxRow.status == OutboxStatus.dead.value
    )
    if is_postgres(db):
        stmt = stmt.with_for_update()
    row = db.scalar(stmt)
    if row is None:
        return None
    row.status, row.attempts, row.next_attempt_at = OutboxStatus.pending.value, 0, clock.now()
    audit.record(db, "outbox.requeue", actor=by, subject_type="outbox", subject_id=row.id)
    db.flush()
    return row


def undelivered(db: Session, *, older_than: datetime | None = None) -> list[OutboxRow]:
    """Rows not delivered yet (pending or dead), oldest first."""
    stmt = select(OutboxRow).where(OutboxRow.status != OutboxStatus.delivered.value)
    if older_than is not None:
        stmt = stmt.where(OutboxRow.created_at < older_than)
    return list(db.scalars(stmt.order_by(OutboxRow.created_at, OutboxRow.id)))
