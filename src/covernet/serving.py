"""Serving with several worker processes, each with a listening socket of its own.

uvicorn's own supervisor binds one socket and hands it to every worker; the kernel then
gives each new connection to whichever worker happens to be waiting in ``accept``.  With
long-lived keep-alive connections (browsers, load balancers, the benchmarks) that splits
the load unevenly: measured with ``bench/buy.py``, one of two workers ran at 94% of a
core and the other at 19%, so the app used little more than one core of two.

Here every worker binds the address itself with ``SO_REUSEPORT`` (Linux), and the kernel
spreads new connections across the workers' sockets.  A worker that dies takes its
socket with it (no connection waits on a socket nobody accepts from) and is started
again; one that fails before it serves stops the whole server, as uvicorn's does.  SIGINT
and SIGTERM are passed on to the workers, which finish their requests and stop; a worker
whose supervisor dies (even by SIGKILL) gets SIGTERM from the kernel.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as EventType
from typing import Any

import uvicorn

log = logging.getLogger("covernet.serving")

STARTUP_FAILURE = 3  # uvicorn's exit code for a worker that could not start
PR_SET_PDEATHSIG = 1  # prctl(2)
STOP_TIMEOUT_SECONDS = 30.0
RESTART_DELAY_SECONDS = 1.0


def reuse_port_supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int) -> socket.socket:
    """A listening-to-be TCP socket on ``host:port`` that other workers may bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, telling the supervisor once it has started serving."""

    def __init__(self, config: uvicorn.Config, ready: EventType) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()


def _die_with(parent: int) -> None:
    """Ask the kernel for SIGTERM when the supervisor dies, however it dies (a killed
    supervisor would otherwise leave its workers serving, and holding connections)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(options: dict[str, Any], ready: EventType, parent: int) -> None:
    """One worker process: its own socket, its own uvicorn server."""
    _die_with(parent)
    config = uvicorn.Config(**options)
    try:
        sock = bind(config.host, config.port)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", config.host, config.port, exc)
        sys.exit(STARTUP_FAILURE)
    with contextlib.suppress(KeyboardInterrupt):
        _Server(config, ready).run(sockets=[sock])


class Supervisor:
    """Starts ``workers`` worker processes, restarts those that die, stops them all on
    SIGINT or SIGTERM."""

    def __init__(self, options: dict[str, Any], workers: int) -> None:
        self.options = options
        self.workers = workers
        self.processes: list[tuple[SpawnProcess, EventType]] = []
        self.stopping = False
        self.failed = False
        self._context = multiprocessing.get_context("spawn")

    def _start(self) -> tuple[SpawnProcess, EventType]:
        ready = self._context.Event()
        process = self._context.Process(target=_worker, args=(self.options, ready, os.getpid()))
        process.start()
        return process, ready

    def _stop(self, signum: int, _frame: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        """Serve until stopped; the exit code (non-zero when a worker could not start)."""
        # Bind once here first: a port held by another program fails at once, not in
        # every worker; the probe is closed before any worker listens.
        bind(self.options["host"], self.options["port"]).close()
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.processes = [self._start() for _ in range(self.workers)]
            while not self.stopping:
                time.sleep(0.2)
                self._keep_alive()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return STARTUP_FAILURE if self.failed else 0

    def _keep_alive(self) -> None:
        for index, (process, ready) in enumerate(self.processes):
            if process.is_alive():
                continue
            process.join()
            if not ready.is_set():  # it never served: the next one would fail the same way
                log.error("worker %s exited with %s while starting", process.pid, process.exitcode)
                self.failed = self.stopping = True
                return
            log.warning("worker %s died (exit %s); starting another", process.pid, process.exitcode)
            time.sleep(RESTART_DELAY_SECONDS)
            self.processes[index] = self._start()

    def _stop_all(self) -> None:
        for process, _ in self.processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process, _ in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def serve(options: dict[str, Any], workers: int) -> int:
    """Serve ``options`` (uvicorn.Config keyword arguments) with ``workers`` processes:
    one socket per worker where the platform spreads connections across them, else
    uvicorn's own supervisor."""
    if workers <= 1 or not reuse_port_supported():
        uvicorn.run(**options, workers=workers)
        return 0
    return Supervisor(options, workers).run()
