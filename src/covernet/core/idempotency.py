"""``Idempotency-Key``: a repeated POST returns the first result instead of acting twice.

The key is claimed by inserting a row in the request's own transaction, before the
action.  A concurrent repeat blocks on the unique index (PostgreSQL) or on the write lock
(SQLite) until the first request commits, then finds the stored answer; if the first
request rolled back, its claim is gone too and the repeat simply runs.  The key is scoped
to the caller and the route, and bound to a hash of the request body: the same key with
another body is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import JSON, Integer, String, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime, unit_of_work
from covernet.core.errors import Conflict, ValidationFailed

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 100


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(160), primary_key=True)  # caller + route
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: Any


def request_hash(body: Any) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            f"the {HEADER} header is 1 to {MAX_KEY_LENGTH} printable characters",
            code="invalid_idempotency_key",
            detail={"field": HEADER},
        )
    return key


def _stored(db: Session, scope: str, key: str, digest: str) -> Replay | None:
    row = db.get(IdempotencyRecord, (scope, key))
    if row is None:
        return None
    if row.request_hash != digest:
        raise Conflict(
            f"this {HEADER} was used for a different request",
            code="idempotency_key_reused",
            detail={"field": HEADER},
        )
    if row.status_code is None:
        raise Conflict(
            "the first request with this key is still being processed",
            code="request_in_progress",
            detail={"field": HEADER},
        )
    return Replay(row.status_code, row.response)


def run_once(
    *,
    scope: str,
    key: str | None,
    body: Any,
    action: Callable[[Session], tuple[int, Any]],
) -> tuple[int, Any, bool]:
    """Run ``action(db)`` in a unit of work once per (scope, key).

    Returns (status code, JSON body, replayed).  Without a key the action simply runs.
    """
    if key is None:
        with unit_of_work() as db:
            status, result = action(db)
            return status, result, False
    key = _check_key(key)
    digest = request_hash(body)
    for _ in range(2):
        try:
            with unit_of_work() as db:
                found = _stored(db, scope, key, digest)
                if found is not None:
                    return found.status_code, found.body, True
                row = IdempotencyRecord(scope=scope, key=key, request_hash=digest)
                db.add(row)
                db.flush()  # claims the key (waits here for a concurrent twin)
                status, result = action(db)
                row.status_code, row.response = status, result
                return status, result, False
        except IntegrityError:
            continue  # a twin committed first: read its answer
    with unit_of_work() as db:
        found = _stored(db, scope, key, digest)
    if found is None:  # pragma: no cover - the twin rolled back twice in a row
        raise Conflict("try again", code="request_in_progress")
    return found.status_code, found.body, True


def purge(db: Session, older_than: timedelta) -> int:
    """Forget keys older than ``older_than`` (``covernet purge``)."""
    cutoff = clock.now() - older_than
    result = db.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
