"""``Idempotency-Key``: a repeated POST returns the first result instead of acting twice.

The key is claimed by inserting a row (``ON CONFLICT DO NOTHING``) in the request's own
transaction, before the action.  A concurrent repeat blocks on the unique index
(PostgreSQL) or on the write lock (SQLite) until the first request commits, then inserts
nothing and reads the stored answer; if the first request rolled back, its claim is gone
too and the repeat simply runs.  The key is scoped
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
from sqlalchemy import JSON, Integer, String, delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime, is_postgres, unit_of_work, unit_of_work_async
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


Action = Callable[[Session], tuple[int, Any]]


def run_once(
    *,
    scope: str | Callable[[Session], str],
    key: str | None,
    body: Any,
    action: Action,
) -> tuple[int, Any, bool]:
    """Run ``action(db)`` in a unit of work once per (scope, key).

    Returns (status code, JSON body, replayed).  Without a key the action simply runs.
    ``scope`` may be a function of the unit of work: a route that identifies its caller
    there (``Caller.identify_in``) checks the credential, claims the key and acts in one
    transaction.
    """
    with unit_of_work() as db:
        return _run_once_in(db, scope, key, body, action)


async def run_once_async(
    *,
    scope: str | Callable[[Session], str],
    key: str | None,
    body: Any,
    action: Action,
) -> tuple[int, Any, bool]:
    """:func:`run_once` awaited from the event loop
    (:func:`covernet.core.db.unit_of_work_async`)."""
    return await unit_of_work_async(lambda db: _run_once_in(db, scope, key, body, action))


def _run_once_in(
    db: Session,
    scope: str | Callable[[Session], str],
    key: str | None,
    body: Any,
    action: Action,
) -> tuple[int, Any, bool]:
    if callable(scope):
        scope = scope(db)
    if key is None:
        status, result = action(db)
        return status, result, False
    key = _check_key(key)
    digest = request_hash(body)
    # Claim the key: a concurrent twin's insert makes this one wait for its commit
    # (PostgreSQL's unique index; SQLite's write lock) and then insert nothing.
    claimed = db.execute(_claim(db, scope=scope, key=key, request_hash=digest)).first()
    if claimed is None:
        found = _stored(db, scope, key, digest)
        if found is None:  # pragma: no cover - removed (purged) between the two
            raise Conflict("try again", code="request_in_progress")
        return found.status_code, found.body, True
    status, result = action(db)
    db.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
        .values(status_code=status, response=result)
        .execution_options(synchronize_session=False)
    )
    return status, result, False


def _claim(db: Session, **values: str) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` of the key's row, in the database's dialect."""
    insert = pg_insert if is_postgres(db) else sqlite_insert
    return (
        insert(IdempotencyRecord)
        .values(**values, created_at=clock.now())
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(IdempotencyRecord.key)
    )


def purge(db: Session, older_than: timedelta) -> int:
    """Forget keys older than ``older_than`` (``covernet purge``)."""
    cutoff = clock.now() - older_than
    result = db.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
