"""``unit_of_work_async``: plain service code in one unit of work awaited from the event
loop (on PostgreSQL through the async driver, on SQLite in a thread): it commits, rolls
back what raised, chains audit entries at commit, and ``pause`` inside it lets the loop
serve others; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.audit.models import AuditEntry
from covernet.core.db import dispose_loop_engines, pause, unit_of_work, unit_of_work_async
from tests.conftest import run_async


def _entries(db_url: str, action: str) -> int:
    with unit_of_work(db_url) as db:
        return int(
            db.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
            )
            or 0
        )


def test_commits_and_chains_audit_entries(db_url: str) -> None:
    def work(db: Session) -> str:
        audit.record(db, "test.async_commit", detail={"n": 1})
        audit.record(db, "test.async_commit", detail={"n": 2})
        return "done"

    async def main() -> str:
        try:
            return await unit_of_work_async(work, db_url)
        finally:
            await dispose_loop_engines()

    assert run_async(main()) == "done"
    assert _entries(db_url, "test.async_commit") == 2
    with unit_of_work(db_url) as db:
        assert audit.verify(db).ok


def test_what_raised_is_rolled_back(db_url: str) -> None:
    def work(db: Session) -> None:
        audit.record(db, "test.async_rollback")
        db.flush()
        raise ValueError("refused")

    async def main() -> None:
        try:
            await unit_of_work_async(work, db_url)
        finally:
            await dispose_loop_engines()

    with pytest.raises(ValueError, match="refused"):
        run_async(main())
    assert _entries(db_url, "test.async_rollback") == 0


def test_pause_lets_the_loop_serve_others(db_url: str) -> None:
    def slow(db: Session) -> float:
        db.execute(select(1))
        pause(0.3)
        db.execute(select(1))
        return time.monotonic()

    async def main() -> tuple[float, float]:
        try:
            waiting = asyncio.ensure_future(unit_of_work_async(slow, db_url))
            await asyncio.sleep(0.05)
            ticked = time.monotonic()  # the loop ran while the unit of work paused
            return ticked, await waiting
        finally:
            await dispose_loop_engines()

    ticked, finished = run_async(main())
    assert finished - ticked >= 0.2
