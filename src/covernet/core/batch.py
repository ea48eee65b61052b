"""Group commit: many concurrent requests' rows written in one shared transaction.

Hot, append-only writes (quotes today; embedded micro-policies later) come in
thousands per second.  Each request hands its row to the process's committer and
awaits it; one writer thread inserts whatever has queued up meanwhile in one
transaction and then wakes every waiter.  A request is answered only after its row is
committed, so nothing lives only in a process's memory, and the cost of a commit (and,
on SQLite, of the database write lock) is shared by the whole batch.  If a batch fails,
its rows are retried one by one so that one bad row fails only its own request.

On SQLite a file lock next to the database serialises writers across processes, so
they queue instead of sleeping in SQLite's busy handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import psycopg
from sqlalchemy import Table, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, IntegrityError

from covernet.core.db import SQLITE_BUSY_TIMEOUT_MS, get_engine

MAX_BATCH = 500
# Errors a single row can cause; anything else is the database's and fails the batch.
ROW_ERRORS = (IntegrityError, DataError, ValueError)


@contextlib.contextmanager
def sqlite_write_lock(url: str) -> Iterator[None]:
    """Hold an exclusive lock shared by every process writing this SQLite database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        yield
        return
    path = Path(parsed.database + ".writelock")
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class GroupCommitter:
    """Inserts rows into one table in shared transactions; one per table, URL and loop."""

    def __init__(
        self, url: str, table: Table, loop: asyncio.AbstractEventLoop, max_batch: int = MAX_BATCH
    ) -> None:
        self.url = url
        self.loop = loop
        self.table = table
        self.max_batch = max_batch
        self.batches = 0
        self.rows = 0
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[None]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._sqlite = _SqliteInserter(url, table) if _is_sqlite_file(url) else None
        backend = make_url(url).get_backend_name()
        self._postgres = _PostgresInserter(url, table) if backend == "postgresql" else None

    async def insert(self, row: dict[str, Any]) -> None:
        """Return once ``row`` is committed; raise what its insert raised."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((row, future))
        await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit([row for row, _ in batch])
            except ROW_ERRORS:
                # One row broke a rule: find it, and let the others through.
                for row, future in batch:
                    try:
                        await self._commit([row])
                    except Exception as exc:
                        _settle(future, exc)
                    else:
                        _settle(future, None)
            except Exception as exc:
                # The database itself failed (down, busy past its timeout): the whole
                # batch fails at once rather than row after row.
                for _, future in batch:
                    _settle(future, exc)
            else:
                for _, future in batch:
                    _settle(future, None)

    def close(self) -> None:
        if self._task is not None and not self._task.done() and not self.loop.is_closed():
            self._task.cancel()
        if self._sqlite is not None:
            self._sqlite.close()
        if self._postgres is not None:
            self._postgres.close()

    async def _commit(self, rows: list[dict[str, Any]]) -> None:
        # PostgreSQL: an async connection of the committer's own, so waiting for the
        # server costs no thread.  SQLite is in-process and a WAL commit takes about
        # 0.1 ms: when no other process holds the write lock, writing right here is
        # cheaper than a hop to a thread.
        if self._postgres is not None:
            await self._postgres.write(rows)
            self._count(rows)
            return
        if self._sqlite is not None and self._sqlite.try_write(rows):
            self._count(rows)
            return
        await anyio.to_thread.run_sync(self._write, rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if self._sqlite is not None:
            self._sqlite.write(rows)
        else:
            # One multi-row INSERT is atomic by itself: in autocommit it is a single
            # round trip, where BEGIN … COMMIT would cost two more.
            engine = get_engine(self.url)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(insert(self.table), rows)
        self._count(rows)

    def _count(self, rows: list[dict[str, Any]]) -> None:
        self.batches += 1
        self.rows += len(rows)


def _processors(table: Table, url: str) -> tuple[list[str], list[Any]]:
    """Column keys and the dialect's bind processors: values are sent exactly as an ORM
    insert would send them."""
    dialect = get_engine(url).dialect
    keys = [column.key for column in table.columns]
    processors = [
        column.type.dialect_impl(dialect).bind_processor(dialect) for column in table.columns
    ]
    return keys, processors


def _bind(
    rows: list[dict[str, Any]], keys: list[str], processors: list[Any]
) -> list[tuple[Any, ...]]:
    missing = [key for key in keys if key not in rows[0]]
    if missing:
        raise ValueError(f"rows lack columns {missing}")
    pairs = list(zip(keys, processors, strict=True))
    return [tuple(row[k] if proc is None else proc(row[k]) for k, proc in pairs) for row in rows]


class _PostgresInserter:
    """One multi-row INSERT per batch over an async psycopg connection in autocommit:
    a single statement (atomic by itself) and a single round trip."""

    def __init__(self, url: str, table: Table) -> None:
        self.keys, self.processors = _processors(table, url)
        self.conninfo = (
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        names = ", ".join(column.name for column in table.columns)
        self.head = f"INSERT INTO {table.name} ({names}) VALUES "  # noqa: S608
        self.row_marks = "(" + ", ".join("%s" for _ in table.columns) + ")"
        self._connection: psycopg.AsyncConnection[Any] | None = None

    async def write(self, rows: list[dict[str, Any]]) -> None:
        params = [value for row in _bind(rows, self.keys, self.processors) for value in row]
        sql = self.head + ", ".join([self.row_marks] * len(rows))
        if self._connection is None or self._connection.closed:
            self._connection = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        try:
            await self._connection.execute(sql, params)
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(sql, None, exc) from exc
        except psycopg.errors.DataError as exc:
            raise DataError(sql, None, exc) from exc
        except psycopg.OperationalError:
            await self._connection.close()
            raise

    def close(self) -> None:
        """Close from outside the event loop (the loop may be gone): end the libpq
        connection directly."""
        if self._connection is not None and not self._connection.closed:
            self._connection.pgconn.finish()
        self._connection = None


def _is_sqlite_file(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")


class _SqliteInserter:
    """Plain DB-API ``executemany`` for one table on SQLite, under the cross-process
    write lock.  Values go through the columns' own SQLAlchemy bind processors, so they
    are stored exactly as an ORM insert would store them."""

    def __init__(self, url: str, table: Table) -> None:
        self.url = url
        self.engine = get_engine(url)
        # SQLite stores dates and datetimes as text in SQLAlchemy's format.
        self.keys, self.processors = _processors(table, url)
        names = ", ".join(column.name for column in table.columns)
        marks = ", ".join("?" for _ in table.columns)
        self.sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608
        self.lock_path = Path(str(make_url(url).database) + ".writelock")
        self._handle = self.lock_path.open("a")
        # A connection of its own: checking one out of the pool on the event loop could
        # wait for the pool.  Batches are written one at a time, so one suffices.
        self._connection: Any = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._handle.close()

    def try_write(self, rows: list[dict[str, Any]]) -> bool:
        """Write now if the lock is free; ``False`` (nothing written) if it is not."""
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            # Never wait on the event loop: if any other connection (a sync request, a
            # CLI command) holds SQLite's own write lock, hand the batch to a thread.
            return self._insert(rows, busy_timeout_ms=0)
        finally:
            fcntl.flock(self._handle, fcntl.LOCK_UN)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Wait for the lock, then write (called in a worker thread)."""
        with sqlite_write_lock(self.url):
            self._insert(rows, busy_timeout_ms=None)

    def _insert(self, rows: list[dict[str, Any]], *, busy_timeout_ms: int | None) -> bool:
        """Insert and commit; ``False`` if SQLite was busy and ``busy_timeout_ms`` is 0."""
        params = _bind(rows, self.keys, self.processors)
        if self._connection is None:
            self._connection = self.engine.raw_connection()
        connection = self._connection
        cursor = connection.cursor()
        if busy_timeout_ms is not None:
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        try:
            cursor.executemany(self.sql, params)
            connection.commit()
            return True
        except sqlite3.OperationalError as exc:
            connection.rollback()
            if busy_timeout_ms == 0 and "locked" in str(exc):
                return False
            raise
        except sqlite3.IntegrityError as exc:
            connection.rollback()
            raise IntegrityError(self.sql, None, exc) from exc
        except BaseException:
            connection.rollback()
            raise
        finally:
            if busy_timeout_ms is not None:
                cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


_lock = threading.Lock()
_committers: dict[tuple[str, str, int], GroupCommitter] = {}


def committer(url: str, table: Table) -> GroupCommitter:
    """The committer for ``table`` on ``url`` in the running event loop."""
    loop = asyncio.get_running_loop()
    key = (url, table.name, id(loop))
    found = _committers.get(key)
    if found is None or found.loop is not loop:
        with _lock:
            found = _committers.get(key)
            if found is None or found.loop is not loop:
                found = _committers[key] = GroupCommitter(url, table, loop)
    return found


def forget_committers() -> None:
    with _lock:
        for found in _committers.values():
            found.close()
        _committers.clear()
