"""Database engine, declarative base and the unit of work.

SQLite is the embedded default (WAL, foreign keys on); PostgreSQL is the scale path.
One unit of work per request, job and CLI command: :func:`unit_of_work` commits at
the end and rolls back on error.  Services flush, never commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_only

from covernet.core import clock
from covernet.core.config import get_settings

T = TypeVar("T")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out, also on SQLite (which drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return clock.as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else clock.as_utc(value)


SQLITE_BUSY_TIMEOUT_MS = 10_000

_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[Session]] = {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={get_settings().sqlite_synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def make_engine(url: str) -> Engine:
    settings = get_settings()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=settings.database_echo,
            connect_args={"check_same_thread": False, "timeout": 10},
            pool_size=settings.database_pool_size,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        echo=settings.database_echo,
        pool_size=settings.database_pool_size,
        max_overflow=0,  # kept once made: a burst never waits for new connections
        pool_pre_ping=settings.database_pre_ping,
        pool_recycle=settings.database_pool_recycle_seconds,
    )


def get_engine(url: str | None = None) -> Engine:
    url = url or get_settings().database_url
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = make_engine(url)
    return engine


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    url = url or get_settings().database_url
    factory = _factories.get(url)
    if factory is None:
        factory = _factories[url] = sessionmaker(get_engine(url), expire_on_commit=False)
    return factory


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _factories.clear()


@contextlib.contextmanager
def unit_of_work(url: str | None = None) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# A unit of work on the event loop (PostgreSQL) ---------------------------------------------

_loop_engines: dict[tuple[str, int], tuple[Any, AsyncEngine]] = {}


def _loop_engine(url: str) -> AsyncEngine:
    """The async engine of ``url`` for the running event loop (its connections belong to
    the loop they were made on)."""
    loop = asyncio.get_running_loop()
    key = (url, id(loop))
    found = _loop_engines.get(key)
    if found is None or found[0] is not loop:
        settings = get_settings()
        engine = create_async_engine(
            url,
            pool_size=settings.database_pool_size,
            max_overflow=0,
            pool_recycle=settings.database_pool_recycle_seconds,
        )
        _loop_engines[key] = (loop, engine)
        return engine
    return found[1]


async def unit_of_work_async(work: Callable[[Session], T], url: str | None = None) -> T:
    """``work(db)`` in one unit of work, awaited from the event loop.

    On PostgreSQL it runs on the loop itself: the plain (synchronous) service code runs
    unchanged while each of its statements awaits the driver's async side (SQLAlchemy's
    greenlet bridge), so no worker thread waits for the interpreter lock after every
    statement while the loop is busy with requests.  SQLite, in-process, works in a
    worker thread as usual."""
    url = url or get_settings().database_url
    if make_url(url).get_backend_name() != "postgresql":

        def in_thread() -> T:
            with unit_of_work(url) as db:
                return work(db)

        return await anyio.to_thread.run_sync(in_thread)
    async with (
        AsyncSession(_loop_engine(url), expire_on_commit=False) as session,
        session.begin(),
    ):
        return await session.run_sync(work)


def pause(seconds: float) -> None:
    """Wait inside a unit of work: on the event loop (:func:`unit_of_work_async` on
    PostgreSQL) the loop serves other requests meanwhile; in a thread, the thread
    sleeps."""
    try:
        await_only(asyncio.sleep(seconds))
    except MissingGreenlet:
        time.sleep(seconds)


async def dispose_loop_engines() -> None:
    """Close the running loop's async engines (the app's lifespan ends with this)."""
    loop = asyncio.get_running_loop()
    for key, (owner, engine) in list(_loop_engines.items()):
        if owner is loop:
            del _loop_engines[key]
            await engine.dispose()
        elif owner.is_closed():
            del _loop_engines[key]  # its connections went with their loop
