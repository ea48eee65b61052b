"""The delivery loop behind ``covernet worker``: claim, deliver, sleep, until told to stop.
Each round delivers the outbox and then the queued notifications (``notify``).

Any number of workers may run side by side (on PostgreSQL claims skip each other's
locked rows; leases return a dead worker's rows).  SIGTERM or SIGINT lets the batch in
hand finish, then the loop ends.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import httpx

from covernet.core.ids import new_token
from covernet.integration.outbox import BatchReport, deliver_batch
from covernet.notify import service as notify

log = logging.getLogger("covernet.integration.worker")


def default_worker_id() -> str:
    """``host:pid:random``: unique per process, readable in ``claimed_by``."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{new_token(4)}"[:64]


def run(
    *,
    worker_id: str,
    once: bool = False,
    interval: float = 2.0,
    batch: int = 20,
    stop: threading.Event | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Deliver until ``stop`` is set (with ``once``: until nothing is due); returns how
    many events were delivered.  In the main thread, SIGTERM/SIGINT set ``stop``."""
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def halt(signum: int, _frame: FrameType | None) -> None:
            log.info("worker %s: signal %d, stopping after this batch", worker_id, signum)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, halt)
    if on_ready is not None:  # after the handlers: a signal from now on stops cleanly
        on_ready()
    delivered = 0
    try:
        with httpx.Client() as client:
            while not stop.is_set():
                try:
                    report = deliver_batch(worker_id, limit=batch, client=client)
                except Exception as exc:  # the database went away: try again next round
                    log.warning("worker %s: %s", worker_id, type(exc).__name__)
                    report = BatchReport()
                delivered += len(report.delivered)
                if on_batch is not None:
                    on_batch(report)
                try:  # queued notifications (notify/) go out each round too
                    notified = notify.deliver_queued(limit=batch).claimed
                except Exception as exc:
                    log.warning("worker %s: notifications: %s", worker_id, type(exc).__name__)
                    notified = 0
                if report.claimed < batch and notified < batch:  # nothing more due right now
                    if once:
                        break
                    stop.wait(interval)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return delivered
