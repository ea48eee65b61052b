"""The one source of time.  Tests move it with :func:`frozen`.

Storage is timezone-aware UTC; display is Asia/Shanghai.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

_offset = timedelta(0)
_fixed: datetime | None = None


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    if _fixed is not None:
        return _fixed
    return datetime.now(UTC) + _offset


def local_now() -> datetime:
    return now().astimezone(SHANGHAI)


def today() -> date:
    """Today's date in China (business dates are Beijing time)."""
    return local_now().date()


def to_local(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(SHANGHAI)


def as_utc(moment: datetime) -> datetime:
    """Normalise a stored timestamp (SQLite drops tzinfo) to aware UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@contextlib.contextmanager
def frozen(moment: datetime) -> Iterator[None]:
    """Freeze the clock at ``moment`` (aware) for the duration of the block."""
    global _fixed
    previous = _fixed
    _fixed = as_utc(moment)
    try:
        yield
    finally:
        _fixed = previous


@contextlib.contextmanager
def shifted(delta: timedelta) -> Iterator[None]:
    """Move the clock by ``delta`` for the duration of the block."""
    global _offset
    previous = _offset
    _offset = previous + delta
    try:
        yield
    finally:
        _offset = previous
