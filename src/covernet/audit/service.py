"""Append to and verify the tamper-evident audit log.

Each entry's hash covers the previous entry's hash and its own content, so altering,
inserting or removing any entry breaks the chain from there on.  Entries are written in
the same transaction as the action they record: an action that rolls back leaves no
entry, and an entry never exists without its action.  Appends lock the chain's head row
(``UPDATE`` first), so concurrent appends queue and the chain never forks.  Entries name
people by account id only; personal data never goes into ``detail``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from covernet.audit.models import AuditAnchor, AuditEntry, AuditHead
from covernet.core import clock

GENESIS = "0" * 64
ANCHOR_EVERY = 100


@dataclass(frozen=True)
class Actor:
    type: str  # user | api_key | system
    id: str | None = None
    role: str | None = None


SYSTEM = Actor("system")


def seed_head(db: Session) -> None:
    """Start an empty chain (the migration does this; so do tests that empty tables)."""
    db.add(AuditHead(id=1, last_seq=0, last_hash=GENESIS))
    db.flush()


def entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    """sha256 over the previous hash and the entry's canonical JSON."""
    payload = json.dumps(
        [
            entry.seq,
            clock.as_utc(entry.at).isoformat(timespec="microseconds"),
            entry.actor_type,
            entry.actor_id,
            entry.actor_role,
            entry.action,
            entry.subject_type,
            entry.subject_id,
            entry.detail,
        ],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev_hash + payload).encode()).hexdigest()


def record(
    db: Session,
    action: str,
    *,
    actor: Actor = SYSTEM,
    subject_type: str | None = None,
    subject_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction."""
    moved = db.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(last_seq=AuditHead.last_seq + 1)
        .execution_options(synchronize_session=False)
    )
    head = db.get(AuditHead, 1, populate_existing=True)
    if not getattr(moved, "rowcount", 0) or head is None:
        raise RuntimeError("the audit log has no head row (the migrations seed it)")
    entry = AuditEntry(
        seq=head.last_seq,
        at=clock.now(),
        actor_type=actor.type,
        actor_id=actor.id,
        actor_role=actor.role,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        detail=json.loads(json.dumps(detail or {}, ensure_ascii=False, sort_keys=True)),
        prev_hash=head.last_hash,
    )
    entry.hash = entry_hash(head.last_hash, entry)
    head.last_hash = entry.hash
    db.add(entry)
    if entry.seq % ANCHOR_EVERY == 0:
        db.add(AuditAnchor(seq=entry.seq, hash=entry.hash, at=entry.at))
    db.flush()
    return entry


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    problem: str | None = None
    seq: int | None = None


def _walk(db: Session, stmt: Any) -> Iterator[AuditEntry]:
    """The entries ``stmt`` selects, oldest first, read in batches by sequence number."""
    last = 0
    while True:
        batch = list(
            db.scalars(stmt.where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(500))
        )
        if not batch:
            return
        yield from batch
        last = batch[-1].seq


def verify(db: Session) -> Verification:
    """Walk the chain; name the first entry that was altered, inserted or removed."""
    prev_hash, before_prev, expected, checked = GENESIS, "", 1, 0
    anchors = {a.seq: a.hash for a in db.scalars(select(AuditAnchor))}
    for entry in _walk(db, select(AuditEntry)):
        checked += 1
        if entry.seq > expected:
            return Verification(
                False, checked, f"entries {expected}–{entry.seq - 1} were removed", expected
            )
        if entry.prev_hash != prev_hash:
            if entry.prev_hash == before_prev:
                return Verification(
                    False, checked, f"entry {entry.seq - 1} was inserted", entry.seq - 1
                )
            if entry_hash(entry.prev_hash, entry) != entry.hash:
                return Verification(False, checked, f"entry {entry.seq} was altered", entry.seq)
            return Verification(
                False,
                checked,
                f"entry {entry.seq} does not follow entry {entry.seq - 1}: the chain was "
                "rewritten before it",
                entry.seq,
            )
        if entry_hash(entry.prev_hash, entry) != entry.hash:
            return Verification(False, checked, f"entry {entry.seq} was altered", entry.seq)
        if entry.seq in anchors and anchors[entry.seq] != entry.hash:
            return Verification(
                False, checked, f"entry {entry.seq} differs from its anchor", entry.seq
            )
        before_prev, prev_hash, expected = prev_hash, entry.hash, entry.seq + 1
    head = db.get(AuditHead, 1)
    last_seq = expected - 1
    if head is None:
        return Verification(False, checked, "the chain's head row is missing", last_seq + 1)
    if head.last_seq != last_seq or head.last_hash != prev_hash:
        if head.last_seq > last_seq:
            return Verification(
                False,
                checked,
                f"entries {last_seq + 1}–{head.last_seq} were removed from the end",
                last_seq + 1,
            )
        return Verification(
            False,
            checked,
            f"entry {head.last_seq + 1} was inserted after the chain's head",
            head.last_seq + 1,
        )
    return Verification(True, checked)


@dataclass(frozen=True)
class Filters:
    actor_id: str | None = None
    action: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(filters: Filters) -> Any:
    stmt = select(AuditEntry)
    for column, value in (
        (AuditEntry.actor_id, filters.actor_id),
        (AuditEntry.action, filters.action),
        (AuditEntry.subject_type, filters.subject_type),
        (AuditEntry.subject_id, filters.subject_id),
    ):
        if value:
            stmt = stmt.where(column == value)
    if filters.since is not None:
        stmt = stmt.where(AuditEntry.at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(AuditEntry.at < filters.until)
    return stmt


def search(
    db: Session, filters: Filters, *, offset: int, limit: int
) -> tuple[list[AuditEntry], int]:
    stmt = _filtered(filters)
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.scalars(stmt.order_by(AuditEntry.seq.desc()).offset(offset).limit(limit))
    return list(rows), total


def export(db: Session, filters: Filters) -> Iterator[AuditEntry]:
    """Every matching entry, oldest first, streamed in batches."""
    return _walk(db, _filtered(filters))
