"""Group commit: concurrent rows share transactions; a bad row fails only its own caller."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from covernet.catalog.models import ProductVersion
from covernet.core.batch import committer
from covernet.core.db import unit_of_work
from covernet.core.ids import new_id
from covernet.policies.models import Quote
from covernet.policies.quotes import QUOTE_TABLE
from tests.conftest import run_async


def _row(version_id: int, **change: object) -> dict[str, object]:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    row: dict[str, object] = {
        "id": new_id(),
        "product_code": "accident-monthly",
        "product_version_id": version_id,
        "plan_code": "basic",
        "term_code": "1m",
        "payment_code": "monthly",
        "frequency": "monthly",
        "premium_fen": 500,
        "sum_insured_fen": 30_000_000,
        "currency": "CNY",
        "order_amount_fen": None,
        "insured_birth_date": date(1990, 1, 1),
        "insured_gender": "M",
        "insured_age": 36,
        "insured_id_enc": None,
        "insured_id_index": None,
        "region": "310000",
        "occupation_class": 1,
        "effective_date": date(2026, 11, 2),
        "end_date": date(2026, 12, 1),
        "customer_id": None,
        "created_at": now,
        "valid_until": now,
    }
    row.update(change)
    return row


def test_concurrent_rows_are_committed_in_shared_batches(
    db_url: str, loaded_catalog: object
) -> None:
    with unit_of_work(db_url) as db:
        version_id = db.scalars(select(ProductVersion.id)).first()
    assert version_id is not None

    async def main() -> tuple[int, list[BaseException | None]]:
        writer = committer(db_url, QUOTE_TABLE)
        await asyncio.gather(*(writer.insert(_row(version_id)) for _ in range(100)))
        clean_batches = writer.batches
        rows = [_row(version_id) for _ in range(20)]
        rows[7] = _row(version_id, product_version_id=10_000_000)  # breaks the foreign key
        rows[8] = {**rows[9]}  # the same primary key as the next row
        results = await asyncio.gather(*(writer.insert(r) for r in rows), return_exceptions=True)
        return clean_batches, [r if isinstance(r, BaseException) else None for r in results]

    clean_batches, outcomes = run_async(main())
    # 100 concurrent rows took a handful of transactions, not 100.
    assert 1 <= clean_batches <= 5
    failed = [i for i, error in enumerate(outcomes) if error is not None]
    assert failed == [7, 9]
    assert all(isinstance(outcomes[i], IntegrityError) for i in failed)
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(Quote)) == 118


@pytest.mark.parametrize("count", [1, 3])
def test_a_lone_row_is_written_at_once(db_url: str, loaded_catalog: object, count: int) -> None:
    with unit_of_work(db_url) as db:
        version_id = db.scalars(select(ProductVersion.id)).first()
    assert version_id is not None

    async def main() -> None:
        writer = committer(db_url, QUOTE_TABLE)
        for _ in range(count):
            await writer.insert(_row(version_id))

    run_async(main())
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(Quote)) == count


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_writers_wait_for_another_process_holding_the_write_lock(
    db_url: str, loaded_catalog: object
) -> None:
    import fcntl
    import threading
    from pathlib import Path

    from sqlalchemy.engine import make_url

    with unit_of_work(db_url) as db:
        version_id = db.scalars(select(ProductVersion.id)).first()
    assert version_id is not None
    lock_path = Path(str(make_url(db_url).database) + ".writelock")
    other = lock_path.open("a")  # another open file: as good as another process
    fcntl.flock(other, fcntl.LOCK_EX)
    released = threading.Event()

    def release_later() -> None:
        released.wait(0.3)
        fcntl.flock(other, fcntl.LOCK_UN)

    async def main() -> int:
        writer = committer(db_url, QUOTE_TABLE)
        task = asyncio.ensure_future(writer.insert(_row(version_id)))
        await asyncio.sleep(0.1)
        with unit_of_work(db_url) as db:  # not written while the lock is held
            assert db.scalar(select(func.count()).select_from(Quote)) == 0
        threading.Thread(target=release_later).start()
        await task
        return writer.rows

    assert run_async(main()) == 1
    other.close()
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(Quote)) == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_busy_sqlite_database_never_blocks_the_event_loop(
    db_url: str, loaded_catalog: object
) -> None:
    """Another connection holds SQLite's write lock: the batch goes to a worker thread
    and the event loop keeps running meanwhile."""
    import threading

    from covernet.core.db import get_engine

    with unit_of_work(db_url) as db:
        version_id = db.scalars(select(ProductVersion.id)).first()
    assert version_id is not None
    holder = get_engine(db_url).raw_connection()
    holder.cursor().execute("BEGIN IMMEDIATE")  # take SQLite's write lock
    threading.Timer(0.3, holder.commit).start()

    async def main() -> int:
        writer = committer(db_url, QUOTE_TABLE)
        task = asyncio.ensure_future(writer.insert(_row(version_id)))
        ticks = 0
        while not task.done():  # the loop is free while the insert waits
            await asyncio.sleep(0.01)
            ticks += 1
        await task
        return ticks

    assert run_async(main()) >= 10
    holder.close()
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(Quote)) == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_group_commit_stores_values_exactly_as_the_orm_does(
    db_url: str, loaded_catalog: object
) -> None:
    """Dates and aware datetimes are text on SQLite: both paths must write the same text,
    or comparisons and ordering in SQL would go wrong."""
    from sqlalchemy import insert, text

    with unit_of_work(db_url) as db:
        version_id = db.scalars(select(ProductVersion.id)).first()
    assert version_id is not None
    moment = datetime(2026, 11, 1, 4, 5, 6, 789, tzinfo=UTC)
    grouped = _row(version_id, created_at=moment, valid_until=moment)
    plain = _row(version_id, created_at=moment, valid_until=moment)

    async def main() -> None:
        await committer(db_url, QUOTE_TABLE).insert(grouped)

    run_async(main())
    with unit_of_work(db_url) as db:
        db.execute(insert(Quote), [plain])
    with unit_of_work(db_url) as db:
        stored = db.execute(
            text("SELECT id, created_at, valid_until, effective_date, end_date FROM quotes")
        ).all()
        as_text = {row[0]: tuple(row[1:]) for row in stored}
        assert as_text[grouped["id"]] == as_text[plain["id"]]
        matched = db.scalars(select(Quote.id).where(Quote.valid_until == moment)).all()
        assert set(matched) == {grouped["id"], plain["id"]}


def test_a_database_failure_fails_the_whole_batch_at_once(
    db_url: str, loaded_catalog: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a row's fault: no row-by-row retries (each could wait a full busy timeout)."""
    from sqlalchemy.exc import OperationalError

    from covernet.core.batch import GroupCommitter

    with unit_of_work(db_url) as db:
        version_id = db.scalars(select(ProductVersion.id)).first()
    assert version_id is not None
    calls: list[int] = []

    async def broken(self: GroupCommitter, rows: list[dict[str, object]]) -> None:
        calls.append(len(rows))
        raise OperationalError("INSERT", None, Exception("database is down"))

    monkeypatch.setattr(GroupCommitter, "_commit", broken)

    async def main() -> list[BaseException | None]:
        writer = committer(db_url, QUOTE_TABLE)
        results = await asyncio.gather(
            *(writer.insert(_row(version_id)) for _ in range(10)), return_exceptions=True
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    outcomes = run_async(main())
    assert all(isinstance(o, OperationalError) for o in outcomes)
    assert calls == [10]
