"""Append to and verify the tamper-evident audit log.

Each entry's hash covers the previous entry's hash and its own content, so altering,
inserting or removing any entry breaks the chain from there on.  Entries are written in
the same transaction as the action they record: an action that rolls back leaves no
entry, and an entry never exists without its action.  A transaction's entries are
chained together when it commits, under the chain's head row lock (one ``UPDATE …
RETURNING`` reserves their sequence numbers), so concurrent appends queue and the chain
never forks, and the lock is held only while the transaction finishes.  Entries name
people by account id only; personal data never goes into ``detail``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, event, func, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction

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
) -> None:
    """Append one entry in the caller's transaction.

    The entry is chained when the transaction commits (:func:`_write_pending`, from the
    session's ``before_commit``), with every other entry the transaction recorded: the
    head row is locked for the last moments of the transaction only, not from the first
    entry on, so concurrent transactions queue on it briefly.  Inside a savepoint the
    entry is chained at once, so it is undone with the savepoint."""
    entry = AuditEntry(
        at=clock.now(),
        actor_type=actor.type,
        actor_id=actor.id,
        actor_role=actor.role,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        detail=json.loads(json.dumps(detail or {}, ensure_ascii=False, sort_keys=True)),
    )
    if db.in_nested_transaction():
        _chain(db, [entry])
    else:
        db.info.setdefault(PENDING, []).append(entry)
    db.flush()  # the caller's own changes, as before (errors surface at the action)


PENDING = "covernet_audit_pending"


def _chain(db: Session, entries: list[AuditEntry]) -> None:
    """Give ``entries`` the next sequence numbers and hashes, in one locking statement."""
    taken = db.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(last_seq=AuditHead.last_seq + len(entries))
        .returning(AuditHead.last_seq, AuditHead.last_hash)
        .execution_options(synchronize_session=False)
    ).first()
    if taken is None:
        raise RuntimeError("the audit log has no head row (the migrations seed it)")
    last_seq, prev = int(taken[0]), str(taken[1])
    anchors = []
    for seq, entry in enumerate(entries, start=last_seq - len(entries) + 1):
        entry.seq, entry.prev_hash = seq, prev
        entry.hash = prev = entry_hash(prev, entry)
        if seq % ANCHOR_EVERY == 0:
            anchors.append({"seq": seq, "hash": entry.hash, "at": entry.at})
    # The entries are only carriers of their values: written as rows, not ORM objects.
    db.execute(insert(ENTRIES), [_row(entry) for entry in entries])
    if anchors:
        db.execute(insert(ANCHORS), anchors)
    db.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(last_hash=prev)
        .execution_options(synchronize_session=False)
    )


ENTRIES: Table = AuditEntry.__table__  # type: ignore[assignment]
ANCHORS: Table = AuditAnchor.__table__  # type: ignore[assignment]
_COLUMNS = tuple(column.key for column in ENTRIES.columns)


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {key: getattr(entry, key) for key in _COLUMNS}


def _write_pending(db: Session) -> None:
    entries = db.info.pop(PENDING, None)
    if entries:
        # Everything else first: the head row stays locked only while the entries
        # themselves are written and the transaction commits.
        db.flush()
        _chain(db, entries)


@event.listens_for(Session, "before_commit")
def _before_commit(db: Session) -> None:
    _write_pending(db)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(db: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost ended: committed (written) or not
        db.info.pop(PENDING, None)


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
    _write_pending(db)
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
    _write_pending(db)
    stmt = _filtered(filters)
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.scalars(stmt.order_by(AuditEntry.seq.desc()).offset(offset).limit(limit))
    return list(rows), total


def export(db: Session, filters: Filters) -> Iterator[AuditEntry]:
    """Every matching entry, oldest first, streamed in batches."""
    _write_pending(db)
    return _walk(db, _filtered(filters))
