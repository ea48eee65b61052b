"""Benchmark ``POST /api/v1/quotes`` against the bare ``GET /api/v1/ping``, over real HTTP.

Run from the project root::

    .venv/bin/python bench/quote.py [--seconds 10] [--workers 2] [--database-url URL]

It prepares a fresh database (SQLite in a temp dir by default, or a dedicated schema
in the PostgreSQL database given), runs ``covernet demo`` on it, starts the real app
with ``covernet serve --workers N`` on a free port of 127.0.0.1 and drives both
endpoints of that one server:

1. saturation: closed loop, ``--connections`` keep-alive connections, as fast as the
   server answers -> requests/s (``wrk`` when installed, else the built-in client);
2. half load: open loop at half the saturated rate -> p50/p99 latency, measured from
   each request's *scheduled* send time so a stalled server cannot hide its stalls
   (no coordinated omission).  ``wrk`` cannot hold a fixed rate, so this phase uses
   ``wrk2`` when installed, else the built-in client.

The built-in client is asyncio on raw HTTP/1.1 keep-alive sockets in one or more
processes (``--client-procs``).  Client and server share the machine: the report says
how busy the CPUs were and how late the client itself was, so it can be read honestly.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import queue
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clientproc import run_client

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
LOCAL_HOSTS = {None, "", "127.0.0.1", "localhost", "::1"}

GOAL_THROUGHPUT_RATIO = 0.50  # quote throughput >= 50 % of bare
GOAL_QUOTE_P99_MS = 10.0  # quote p99 at half load <= 10 ms
NOISE_WARNING = 0.10  # warn when other processes take more than 10 % of the CPUs

CONNECTION_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError, ValueError)
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


# Endpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    label: str
    method: str
    path: str
    expect: int
    bodies: tuple[bytes, ...] = ()

    def raw_requests(self, port: int) -> list[bytes]:
        """Ready-to-send HTTP/1.1 keep-alive requests (one per body, or one)."""
        head = f"{self.method} {self.path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        if not self.bodies:
            return [f"{head}\r\n".encode()]
        return [
            f"{head}Content-Type: application/json\r\nContent-Length: {len(b)}\r\n\r\n".encode() + b
            for b in self.bodies
        ]


def quote_bodies() -> tuple[bytes, ...]:
    """The quote body with the birth date varied a little (140 distinct bodies)."""
    bodies = []
    for year in range(1988, 1993):
        for day in range(1, 29):
            body = {
                "product_code": "accident-monthly",
                "plan_code": "basic",
                "insured": {
                    "birth_date": f"{year}-05-{day:02d}",
                    "gender": "M",
                    "region": "310000",
                },
            }
            bodies.append(json.dumps(body).encode())
    return tuple(bodies)


PING = Endpoint("GET  /api/v1/ping", "GET", "/api/v1/ping", 200)
QUOTE = Endpoint("POST /api/v1/quotes", "POST", "/api/v1/quotes", 201, quote_bodies())


# Results -----------------------------------------------------------------------------


@dataclass
class Run:
    """One load phase against one endpoint."""

    seconds: float
    completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ns: list[int] = field(default_factory=list)
    lag_ns: list[int] = field(default_factory=list)  # open loop: client lateness
    rps_override: float | None = None  # wrk reports its own rate
    p50_override: float | None = None
    p99_override: float | None = None
    server_cpu_s: float = 0.0  # CPU seconds used by the server processes
    client_cpu_s: float = 0.0  # ... by the load generator (wrk or client processes)
    db_cpu_s: float = 0.0  # ... by PostgreSQL (all its processes), when used
    busy_cpu_s: float = 0.0  # ... by the whole machine
    capacity_cpu_s: float = 0.0  # wall time x CPUs

    @property
    def rps(self) -> float:
        if self.rps_override is not None:
            return self.rps_override
        return self.completed / self.seconds if self.seconds else 0.0

    def pct_ms(self, q: float) -> float:
        if q == 0.5 and self.p50_override is not None:
            return self.p50_override
        if q == 0.99 and self.p99_override is not None:
            return self.p99_override
        return percentile(self.latencies_ns, q) / 1e6

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / self.completed if self.completed else math.nan

    def other_share(self) -> float:
        """Share of all CPUs used by processes that are neither server, client nor database."""
        if not self.capacity_cpu_s:
            return 0.0
        ours = self.server_cpu_s + self.client_cpu_s + self.db_cpu_s
        return max(0.0, self.busy_cpu_s - ours) / self.capacity_cpu_s

    def cpu_shares(self) -> str:
        """Server(+database) / client / anything else, in % of all CPUs: ``"55/30/5"``."""
        if not self.capacity_cpu_s:
            return "—"
        server = f"{100 * self.server_cpu_s / self.capacity_cpu_s:.0f}"
        if self.db_cpu_s:
            server += f"+{100 * self.db_cpu_s / self.capacity_cpu_s:.0f}"
        client = f"{100 * self.client_cpu_s / self.capacity_cpu_s:.0f}"
        return f"{server}/{client}/{100 * self.other_share():.0f}"


def percentile(values: list[int], q: float) -> float:
    """Nearest-rank percentile; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(q * len(ordered)) - 1)])


# Built-in client (runs in child processes) --------------------------------------------


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one request on a keep-alive connection, read the whole response: its status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = CONTENT_LENGTH.search(head)
    if length is None:
        raise ConnectionError("response without content-length")
    await reader.readexactly(int(length.group(1)))
    return int(head[9:12])


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()


async def _closed_loop(job: dict[str, Any], barrier: Any) -> dict[str, Any]:
    """``connections`` loops, each sending its next request as soon as the last returns."""
    requests, expect, port = job["requests"], job["expect"], job["port"]
    latencies: list[int] = []
    errors: Counter[str] = Counter()
    conns = [await asyncio.open_connection(HOST, port) for _ in range(job["connections"])]
    barrier.wait()
    start = time.perf_counter_ns()
    deadline = asyncio.get_running_loop().time() + job["seconds"]

    async def drive(k: int) -> None:
        reader, writer = conns[k]
        i = k
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                while True:
                    i += 1
                    t0 = time.perf_counter_ns()
                    try:
                        status = await _exchange(reader, writer, requests[i % len(requests)])
                    except CONNECTION_ERRORS as exc:
                        errors[f"connection error ({type(exc).__name__})"] += 1
                        _close(writer)
                        await asyncio.sleep(0.01)
                        with contextlib.suppress(OSError):
                            reader, writer = await asyncio.open_connection(HOST, port)
                        continue
                    latencies.append(time.perf_counter_ns() - t0)
                    if status != expect:
                        errors[f"status {status}"] += 1
        _close(writer)

    await asyncio.gather(*(drive(k) for k in range(len(conns))))
    elapsed = (time.perf_counter_ns() - start) / 1e9
    return {"latencies": latencies, "lag": [], "errors": errors, "seconds": elapsed}


async def _open_loop(job: dict[str, Any], barrier: Any) -> dict[str, Any]:
    """Send at a fixed rate whatever the server does; latency counts from the schedule."""
    requests, expect, port = job["requests"], job["expect"], job["port"]
    rate, seconds = job["rate"], job["seconds"]
    slots = asyncio.Semaphore(job["max_connections"])  # requests in flight = connections
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[int] = []
    lag: list[int] = []
    errors: Counter[str] = Counter()

    async def connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """An idle keep-alive connection, else a new one."""
        while idle:
            reader, writer = idle.pop()
            if not reader.at_eof():
                return reader, writer
            _close(writer)  # the server closed it (idle for its keep-alive timeout)
        return await asyncio.open_connection(HOST, port)

    async def one(due: int, request: bytes) -> None:
        async with slots:
            try:
                reader, writer = await connection()
                try:
                    status = await _exchange(reader, writer, request)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        raise
                    # Closed by the server as we sent: nothing was processed, resend once.
                    _close(writer)
                    reader, writer = await asyncio.open_connection(HOST, port)
                    status = await _exchange(reader, writer, request)
            except CONNECTION_ERRORS as exc:
                errors[f"connection error ({type(exc).__name__})"] += 1
                return
            latencies.append(time.perf_counter_ns() - due)
            idle.append((reader, writer))
            if status != expect:
                errors[f"status {status}"] += 1

    for _ in range(min(4, job["max_connections"])):  # a few warm connections
        idle.append(await asyncio.open_connection(HOST, port))
    total = int(rate * seconds)
    interval = 1e9 / rate
    tasks: set[asyncio.Task[None]] = set()
    barrier.wait()
    start = time.perf_counter_ns()
    for i in range(total):
        due = start + int(i * interval)
        ahead = due - time.perf_counter_ns()
        if ahead > 0:
            await asyncio.sleep(ahead / 1e9)
        lag.append(max(0, time.perf_counter_ns() - due))
        task = asyncio.create_task(one(due, requests[i % len(requests)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    elapsed = (time.perf_counter_ns() - start) / 1e9
    if tasks:  # stragglers get a grace period, then count as errors
        _, pending = await asyncio.wait(set(tasks), timeout=job["grace"])
        for task in pending:
            task.cancel()
        if pending:
            errors[f"no answer {job['grace']:g}s after the run"] += len(pending)
    for _, writer in idle:
        _close(writer)
    return {"latencies": latencies, "lag": lag, "errors": errors, "seconds": elapsed}


def _client_main(job: dict[str, Any], barrier: Any, results: Any) -> None:
    """Entry point of one client process."""
    run_client(_open_loop if job["mode"] == "open" else _closed_loop, job, barrier, results)


def builtin_run(
    endpoint: Endpoint, port: int, *, mode: str, procs: int, seconds: float, **params: Any
) -> Run:
    """Run the built-in client in ``procs`` processes and merge what they measured."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs + 1)
    results = ctx.Queue()
    requests = endpoint.raw_requests(port)
    jobs = []
    for p in range(procs):
        job = {"mode": mode, "port": port, "expect": endpoint.expect, "seconds": seconds}
        job["requests"] = requests[p::procs] or requests
        if mode == "open":
            job.update(
                rate=params["rate"] / procs,
                max_connections=max(1, params["max_connections"] // procs),
                grace=params["grace"],
            )
        else:
            share = params["connections"] // procs + (p < params["connections"] % procs)
            job["connections"] = max(1, share)
        jobs.append(job)
    children = [
        ctx.Process(target=_client_main, args=(job, barrier, results), daemon=True) for job in jobs
    ]
    for child in children:
        child.start()
    finished = False
    try:
        with contextlib.suppress(threading.BrokenBarrierError):  # failures are reported below
            barrier.wait(timeout=30)
        outputs = [results.get(timeout=seconds + 60) for _ in children]
        finished = True
    except queue.Empty:
        raise RuntimeError("a client process died without reporting") from None
    finally:
        for child in children:
            child.join(timeout=10 if finished else 0)
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)
    failures = [o["failure"] for o in outputs if "failure" in o]
    if failures:
        raise RuntimeError(f"client process failed: {failures[0]}")
    run = Run(max(o["seconds"] for o in outputs))
    for out in outputs:
        run.latencies_ns.extend(out["latencies"])
        run.lag_ns.extend(out["lag"])
        run.errors.update(out["errors"])
    run.completed = len(run.latencies_ns)
    return run


# wrk -----------------------------------------------------------------------------------


def wrk_script(endpoint: Endpoint) -> str:
    """Lua for wrk: the request (varied bodies for POST) and a count of wrong statuses."""
    lines = [
        "-- generated by bench/quote.py",
        f'wrk.method = "{endpoint.method}"',
        f"expected = {endpoint.expect}",
        "bad = 0",
        "local threads = {}",
        "function setup(thread) table.insert(threads, thread) end",
        "function response(status, headers, body)",
        "  if status ~= expected then bad = bad + 1 end",
        "end",
        "function done(summary, latency, requests)",
        "  local total = 0",
        '  for _, t in ipairs(threads) do total = total + t:get("bad") end',
        '  io.write(string.format("BENCH_BAD %d\\n", total))',
        "end",
    ]
    if endpoint.bodies:
        quoted = ",\n  ".join(f"[[{b.decode()}]]" for b in endpoint.bodies)
        lines += [
            'wrk.headers["Content-Type"] = "application/json"',
            f"local bodies = {{\n  {quoted}\n}}",
            "local n = 0",
            "function request()",
            "  n = n + 1",
            "  return wrk.format(nil, nil, nil, bodies[(n % #bodies) + 1])",
            "end",
        ]
    return "\n".join(lines) + "\n"


def _wrk_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[unit]


def wrk_run(
    wrk: str,
    endpoint: Endpoint,
    port: int,
    script: Path,
    *,
    seconds: float,
    connections: int,
    threads: int,
    rate: float | None = None,
) -> Run:
    """One wrk (or wrk2, with ``rate``) run; its own summary is parsed."""
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    cmd += ["--latency", "-s", str(script)]
    if rate is not None:
        cmd += [f"-R{max(1, round(rate))}"]
    cmd.append(f"http://{HOST}:{port}{endpoint.path}")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    out = done.stdout
    if done.returncode != 0 or "Requests/sec:" not in out:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{out}\n{done.stderr}")
    run = Run(seconds)
    run.completed = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    run.rps_override = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    run.seconds = run.completed / run.rps_override if run.rps_override else seconds
    for key in ("50", "99"):
        found = re.search(rf"^\s+{key}(?:\.000)?%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.M)
        if found:
            setattr(run, f"p{key}_override", _wrk_ms(found.group(1)))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        kinds = ("connect", "read", "write", "timeout")
        for kind, count in zip(kinds, socket_errors.groups(), strict=True):
            run.errors[f"socket {kind} error"] += int(count)
    bad = re.search(r"BENCH_BAD (\d+)", out)
    if bad:
        run.errors[f"status other than {endpoint.expect}"] += int(bad.group(1))
    else:  # no Lua tally: fall back on wrk's own count
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        run.errors["status not 2xx/3xx"] += int(non_2xx.group(1)) if non_2xx else 0
    run.errors = +run.errors  # drop zero counts
    return run


def is_wrk2(path: str) -> bool:
    """wrk2 is often installed as ``wrk``; it is the one that takes ``-R``."""
    done = subprocess.run([path, "-v"], capture_output=True, text=True, check=False)
    return "-R, --rate" in done.stdout + done.stderr


# Database and server -----------------------------------------------------------------


@contextlib.contextmanager
def database(url: str | None, schema: str, tmp: Path) -> Iterator[tuple[str, str]]:
    """A fresh database for the run: its URL and a description."""
    if url is None:
        yield f"sqlite:///{tmp / 'bench.db'}", "SQLite (fresh file in a temp dir)"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    if parsed.host not in LOCAL_HOSTS:
        raise SystemExit(f"refusing a non-local database host: {parsed.host}")
    if parsed.get_backend_name() == "sqlite":
        yield url, "SQLite (given file, not reset)"
        return
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit("--database-url must be SQLite or PostgreSQL")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise SystemExit(f"bad schema name: {schema}")
    admin = create_engine(parsed, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
        version = conn.scalar(text("SHOW server_version"))
    scoped = parsed.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield (
            scoped.render_as_string(hide_password=False),
            f"PostgreSQL {version} (schema {schema})",
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def app_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        COVERNET_DATABASE_URL=database_url,
        COVERNET_ENV="development",
        COVERNET_CATALOG_DIR=str(ROOT / "catalog"),
        COVERNET_LOG_LEVEL="warning",
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare(env: dict[str, str]) -> None:
    """Migrations, demo catalog and accounts: ``covernet demo``."""
    cmd = [sys.executable, "-m", "covernet.cli", "demo"]
    done = subprocess.run(
        cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"covernet demo failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """``covernet serve`` in its own session, so it can be stopped with all its workers."""

    def __init__(self, env: dict[str, str], workers: int, port: int, log: Path) -> None:
        self.env, self.workers, self.port, self.log_path = env, workers, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "covernet.cli", "serve", "--host", HOST]
        cmd += ["--port", str(self.port), "--workers", str(self.workers)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_healthy(self, timeout: float = 60) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        url = f"http://{HOST}:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=2) as response,
            ):
                if response.status == 200 and len(self.pids()) > self.workers:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"/healthz did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def pids(self) -> list[int]:
        """The server process and all its descendants (workers)."""
        if self.proc is None:
            return []
        parents = {pid: int(fields[1]) for pid, fields in proc_stats().items()}
        found, frontier = [self.proc.pid], [self.proc.pid]
        while frontier:
            frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
            found += frontier
        return found

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)  # uvicorn stops its workers
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own session only
            self.proc.wait(timeout=5)


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    with contextlib.suppress(OSError, ValueError):
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        return sum(values) - idle, sum(values)
    return 0, 0


def proc_stats() -> dict[int, list[str]]:
    """``/proc/PID/stat`` of every process, split after the command name (Linux)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stats[int(entry.name)] = (entry / "stat").read_text().rpartition(")")[2].split()
    return stats


def process_cpu(pids: list[int] | None = None, command: str | None = None) -> float:
    """CPU seconds used so far by the given processes, or by those running ``command``."""
    ticks = 0
    for pid, fields in proc_stats().items():
        if pids is not None and pid not in pids:
            continue
        if command is not None:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() != command:
                    continue
        ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds of our finished children: wrk runs and client processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check_once(endpoint: Endpoint, port: int) -> None:
    """One request by hand: the endpoint answers as expected before any load."""
    body = endpoint.bodies[0] if endpoint.bodies else None
    request = urllib.request.Request(
        f"http://{HOST}:{port}{endpoint.path}",
        data=body,
        method=endpoint.method,
        headers={"Content-Type": "application/json"} if body else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local
            status = response.status
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()[:500].decode(errors="replace")
    else:
        text = ""
    if status != endpoint.expect:
        raise RuntimeError(f"{endpoint.label} answered {status}, not {endpoint.expect}: {text}")


# Driving -----------------------------------------------------------------------------


@dataclass
class Result:
    endpoint: Endpoint
    saturation: Run
    half: Run
    half_rate: float


class Bench:
    def __init__(
        self, args: argparse.Namespace, server: Server, tmp: Path, db_is_postgres: bool
    ) -> None:
        self.args, self.server, self.tmp = args, server, tmp
        self.db_is_postgres = db_is_postgres  # then its CPU use is measured too
        wrk = None if args.generator == "builtin" else shutil.which("wrk")
        wrk2 = None if args.generator == "builtin" else shutil.which("wrk2")
        if wrk2 is None and wrk is not None and is_wrk2(wrk):
            wrk2 = wrk
        if args.generator == "wrk" and wrk is None:
            raise SystemExit("--generator wrk, but wrk is not installed")
        self.wrk, self.wrk2 = wrk, wrk2

    def cpu_now(self) -> tuple[float, float, float, tuple[int, int]]:
        """CPU seconds so far: server, client (finished children), database, machine."""
        database = process_cpu(command="postgres") if self.db_is_postgres else 0.0
        return process_cpu(self.server.pids()), children_cpu(), database, cpu_ticks()

    def measured(self, phase: Any) -> Run:
        """Run ``phase`` and attach the CPU used by server, client, database and the rest."""
        server0, client0, db0, (busy0, total0) = self.cpu_now()
        run: Run = phase()
        server1, client1, db1, (busy1, total1) = self.cpu_now()
        tick = os.sysconf("SC_CLK_TCK")
        run.server_cpu_s, run.client_cpu_s = server1 - server0, client1 - client0
        run.db_cpu_s = db1 - db0
        run.busy_cpu_s, run.capacity_cpu_s = (busy1 - busy0) / tick, (total1 - total0) / tick
        return run

    def closed(self, endpoint: Endpoint, seconds: float) -> Run:
        a, port = self.args, self.server.port
        if self.wrk:
            script = self.tmp / f"{endpoint.method.lower()}.lua"
            script.write_text(wrk_script(endpoint))
            return wrk_run(
                self.wrk, endpoint, port, script,
                seconds=seconds, connections=a.connections, threads=a.wrk_threads,
            )  # fmt: skip
        return builtin_run(
            endpoint, port, mode="closed", procs=a.client_procs, seconds=seconds,
            connections=a.connections,
        )  # fmt: skip

    def open(self, endpoint: Endpoint, rate: float, seconds: float) -> Run:
        a, port = self.args, self.server.port
        if self.wrk2:
            script = self.tmp / f"{endpoint.method.lower()}.lua"
            script.write_text(wrk_script(endpoint))
            return wrk_run(
                self.wrk2, endpoint, port, script,
                seconds=seconds, connections=a.connections, threads=a.wrk_threads, rate=rate,
            )  # fmt: skip
        return builtin_run(
            endpoint, port, mode="open", procs=a.client_procs, seconds=seconds, rate=rate,
            max_connections=a.max_connections, grace=5.0,
        )  # fmt: skip

    def endpoint(self, endpoint: Endpoint) -> Result:
        a = self.args
        check_once(endpoint, self.server.port)
        if a.warmup > 0:
            say(f"{endpoint.label}: warm-up {a.warmup:g}s")
            self.closed(endpoint, a.warmup)
        say(f"{endpoint.label}: saturation {a.seconds:g}s, {a.connections} connections")
        sat = self.measured(lambda: self.closed(endpoint, a.seconds))
        rate = sat.rps / 2
        say(f"{endpoint.label}: {sat.rps:,.0f} req/s; half load {rate:,.0f} req/s, {a.seconds:g}s")
        time.sleep(1)  # let the server drain
        half = self.measured(lambda: self.open(endpoint, rate, a.seconds))
        return Result(endpoint, sat, half, rate)


def say(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


# Report ------------------------------------------------------------------------------


def fmt(value: float, spec: str = ",.1f") -> str:
    return "—" if value is None or math.isnan(value) else format(value, spec)


def report(args: argparse.Namespace, bench: Bench, db_kind: str, results: list[Result]) -> bool:
    ping, quote = results
    cpus = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    sat_gen = "wrk" if bench.wrk else f"built-in ({args.client_procs} proc)"
    half_gen = "wrk2" if bench.wrk2 else f"built-in open loop ({args.client_procs} proc)"
    print()
    print("Covernet quote benchmark")
    print(f"  machine    {cpus} CPUs (nproc {usable}), {cpu_model()}, {platform.system()}")
    print(f"  python     {platform.python_version()} ({sys.executable})")
    print(f"  database   {db_kind}")
    print(f"  server     covernet serve --workers {args.workers} (uvicorn) on {HOST}")
    print(f"  load       saturation: {sat_gen}, {args.connections} connections;")
    print(f"             half load: {half_gen}; {args.seconds:g}s per phase")
    print("  note       client and server share this machine.  CPU% s/c/o: share of all CPUs")
    print("             used by server(+PostgreSQL) / client / anything else; CPU ms/req: server")
    print("             only; lag p99: how late the client itself sent (its own overload)")
    print()
    widths = (20, 9, 10, 9, 2, 9, 7, 7, 7, 8, 9, 7)
    header = ("endpoint", "req/s", "CPU ms/req", "CPU% s/c/o", "|", "req/s", "p50 ms")
    header += ("p99 ms", "max ms", "lag p99", "CPU% s/c/o", "errors")
    print(f"{'':21}{'saturation (closed loop)':<42}half load (open loop)")
    print(table_line(header, widths))
    print("-" * (sum(widths) + len(widths) - 1))
    for r in results:
        s, h = r.saturation, r.half
        top = max(h.latencies_ns) / 1e6 if h.latencies_ns else math.nan
        cells = (r.endpoint.label, fmt(s.rps, ",.0f"), fmt(s.cpu_ms_per_request, ".2f"))
        cells += (s.cpu_shares(), "|", fmt(h.rps, ",.0f"), fmt(h.pct_ms(0.5), ".2f"))
        cells += (fmt(h.pct_ms(0.99), ".2f"), fmt(top, ".1f"))
        cells += (fmt(percentile(h.lag_ns, 0.99) / 1e6, ".2f"), h.cpu_shares())
        cells += (str((s.errors + h.errors).total()),)
        print(table_line(cells, widths))
    print()
    ratio = quote.saturation.rps / ping.saturation.rps if ping.saturation.rps else 0.0
    p99 = quote.half.pct_ms(0.99)
    ratio_ok = ratio >= GOAL_THROUGHPUT_RATIO
    p99_ok = p99 <= GOAL_QUOTE_P99_MS
    errors: Counter[str] = Counter()
    for r in results:
        for phase, run in (("saturation", r.saturation), ("half load", r.half)):
            for kind, count in run.errors.items():
                errors[f"{r.endpoint.label.split()[1]} {phase}: {kind}"] += count
    print(f"quote / bare throughput   {ratio:6.1%}   goal >= {GOAL_THROUGHPUT_RATIO:.0%}  ", end="")
    print("MET" if ratio_ok else "NOT MET")
    print(
        f"quote p99 at half load   {fmt(p99, '6.2f')} ms  goal <= {GOAL_QUOTE_P99_MS:g} ms  ",
        end="",
    )
    print("MET" if p99_ok else "NOT MET")
    noisy = max(run.other_share() for r in results for run in (r.saturation, r.half))
    if noisy > NOISE_WARNING:
        print(
            f"WARNING: other processes used up to {noisy:.0%} of the CPUs during a phase; "
            "these numbers are not reliable, run again on a quiet machine"
        )
    print(f"errors (wrong status, socket errors, no answer)   {errors.total()}")
    for kind, count in sorted(errors.items()):
        print(f"  {count:>8}  {kind}")
    return ratio_ok and p99_ok and not errors


def table_line(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    first, *rest = zip(cells, widths, strict=True)
    return " ".join([first[0].ljust(first[1]), *(c.rjust(w) for c, w in rest)])


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


# Main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10, help="length of each phase (10)")
    p.add_argument("--warmup", type=float, default=2, help="discarded warm-up per endpoint (2)")
    p.add_argument("--workers", type=int, default=2, help="server worker processes (2)")
    p.add_argument("--database-url", help="PostgreSQL URL (a schema is made for the run)")
    p.add_argument("--schema", default="bench", help="PostgreSQL schema to create/drop (bench)")
    p.add_argument("--connections", type=int, default=16, help="saturation connections (16)")
    p.add_argument(
        "--generator",
        choices=("auto", "wrk", "builtin"),
        default="auto",
        help="auto: wrk for saturation when installed (wrk2 for half load too)",
    )
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1)")
    p.add_argument("--client-procs", type=int, default=1, help="built-in client processes (1)")
    p.add_argument("--max-connections", type=int, default=64, help="open-loop connection cap (64)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal is not met")
    return p.parse_args(argv)


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    server: Server | None = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="covernet-bench-") as tmp_name,
            database(args.database_url, args.schema, Path(tmp_name)) as (url, db_kind),
        ):
            tmp = Path(tmp_name)
            env = app_env(url)
            say(f"preparing the database: covernet demo ({db_kind})")
            prepare(env)
            server = Server(env, args.workers, free_port(), tmp / "server.log")
            try:
                say(f"starting covernet serve --workers {args.workers} on port {server.port}")
                server.start()
                server.wait_healthy()
                bench = Bench(args, server, tmp, db_kind.startswith("PostgreSQL"))
                results = [bench.endpoint(PING), bench.endpoint(QUOTE)]
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\nserver log (tail):\n{server.log_tail()}") from exc
            finally:
                server.stop()  # before the database goes away
    except KeyboardInterrupt:
        print("\ninterrupted; server stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 2
    ok = report(args, bench, db_kind, results)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
