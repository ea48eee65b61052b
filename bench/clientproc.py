"""Shared by the benchmarks: the body of one load-generating client process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import Any


def run_client(
    drive: Callable[[dict[str, Any], Any], Awaitable[Any]],
    job: dict[str, Any],
    barrier: Any,
    results: Any,
) -> None:
    """Run ``drive(job, barrier)`` on uvloop (when installed) and put its result, or the
    failure, on ``results``; a failure aborts the barrier so the others do not wait."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    try:
        with runner:
            results.put(runner.run(drive(job, barrier)))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put({"failure": f"{type(exc).__name__}: {exc}"})
