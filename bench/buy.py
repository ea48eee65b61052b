"""Benchmark complete purchases over real HTTP, then reading a policy with auth.

Run from the project root::

    .venv/bin/python bench/buy.py [--seconds 20] [--customers 128] [--database-url URL]

It prepares a fresh database (by default a schema of its own in the PostgreSQL database
at ``127.0.0.1:5432/test``; ``--database-url sqlite`` for a SQLite file in a temp dir),
runs ``covernet demo``, registers ``--customers`` customers with bearer tokens (through
the identity service, untimed), starts ``covernet serve --workers N`` with
``COVERNET_ENV=development`` and ``COVERNET_PUBLIC_URL`` pointing at itself, so the
sandbox payment provider's signed callbacks are delivered by the app's own background
deliverer, exactly as in the demo.

Phase 1, complete flows: every customer, on its own keep-alive connection, buys one
policy after another, closed loop::

    POST /api/v1/quotes                       (bearer token, a new insured ID number)
    GET  /api/v1/products/{code}/documents    (once per product and client: cached)
    POST /api/v1/applications                 (Idempotency-Key, every acknowledgement)
    POST /sandbox/payments/{payment_id}/succeed
    GET  /api/v1/applications/{id}            (polled, with back-off, until ``issued``)

It prints completed flows/s over the measuring window, per-step latency, the time from
pay to issued (as the client saw it, and from ``policies.issued_at``), errors by code,
and checks the database: one policy per completed flow, no application with two
policies, every succeeded payment with a policy or a refund.

Phase 2, ``GET /api/v1/policies/{id}`` with the owner's bearer token, over the policies
phase 1 made: saturation (closed loop) for the peak rate, then an open loop at half of it
for p50/p99 from each request's scheduled send time (bench/quote.py's client).  See
bench/README.md.
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
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The benchmark next door: database, server, CPU meters and the open-loop client.
from clientproc import run_client
from quote import (
    HOST,
    ROOT,
    Bench,
    Endpoint,
    Run,
    Server,
    app_env,
    builtin_run,
    cpu_model,
    cpu_ticks,
    database,
    free_port,
    percentile,
    prepare,
    process_cpu,
    say,
)

DEFAULT_POSTGRES = "postgresql+psycopg://127.0.0.1:5432/test"
GOAL_FLOWS = 500.0  # complete flows/s on PostgreSQL
GOAL_POLICY_P99_MS = 10.0  # GET /api/v1/policies/{id} p99 at half of its peak rate
NOISE_WARNING = 0.10
PRODUCT, PLAN, REGION = "accident-monthly", "basic", "310000"
CONNECTION_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError, ValueError)
REQUEST_TIMEOUT = 20.0  # seconds; longer counts as an error (the server's pool waits 30 s)
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
STEPS = ("quote", "documents", "apply", "pay", "poll")
STEP_LABELS = {
    "quote": "POST /api/v1/quotes",
    "documents": "GET  /api/v1/products/{code}/documents",
    "apply": "POST /api/v1/applications",
    "pay": "POST /sandbox/payments/{id}/succeed",
    "poll": "GET  /api/v1/applications/{id}",
}


# The flow client (runs in child processes) -----------------------------------------------


class FlowError(Exception):
    """A step answered something else than the flow needs; ``kind`` names it."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Conn:
    """One keep-alive HTTP/1.1 connection, as a browser tab would hold it."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.auth = f"Authorization: Bearer {token}\r\n".encode()
        self.host = f"Host: {HOST}:{port}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Send one request, read the whole answer: (status, parsed JSON or None)."""
        data = orjson.dumps(body) if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self.host + self.auth
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n".encode()
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n".encode()
        elif method == "POST":
            head += b"Content-Length: 0\r\n"
        raw = head + b"\r\n" + data
        for attempt in (1, 2):
            if self.writer is None or self.reader is None or self.reader.at_eof():
                self.close()
                self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    self.writer.write(raw)
                    answer = await self.reader.readuntil(b"\r\n\r\n")
                    length = CONTENT_LENGTH.search(answer)
                    if length is None:
                        raise ConnectionError("response without content-length")
                    content = await self.reader.readexactly(int(length.group(1)))
            except TimeoutError:
                self.close()
                raise FlowError(f"no answer within {REQUEST_TIMEOUT:g}s ({method})") from None
            except asyncio.IncompleteReadError as exc:
                self.close()
                if exc.partial or attempt == 2:
                    raise
                continue  # closed by the server as we sent: nothing was processed
            status = int(answer[9:12])
            return status, orjson.loads(content) if content else None
        raise ConnectionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.reader = self.writer = None


def _fail(step: str, status: int, answer: Any) -> FlowError:
    code = answer.get("error") if isinstance(answer, dict) else None
    return FlowError(f"{step}: {status}{' ' + code if code else ''}")


def insured_id(n: int) -> str:
    """A distinct valid ID number for the ``n``-th flow of a run: an adult born between
    1970 and 2000 (so no accumulation limit is ever reached by repeating one insured)."""
    from covernet.core.cn_identity import make_id_number

    days, seq = divmod(n, 1000)
    birth = date(1970, 1, 1) + timedelta(days=days % 10_950)
    return make_id_number("310104", birth, seq)


async def one_flow(
    conn: Conn, n: int, docs_cache: dict[str, dict[str, Any]], params: dict[str, Any], out: Any
) -> dict[str, Any]:
    """One complete purchase; step timings go to ``out(step, ns)``.  Returns the flow's
    facts, or raises :class:`FlowError`."""
    id_number = insured_id(n)
    t0 = time.perf_counter_ns()
    status, quote = await conn.request(
        "POST",
        "/api/v1/quotes",
        {
            "product_code": PRODUCT,
            "plan_code": PLAN,
            "insured": {"id_number": id_number, "region": REGION},
        },
    )
    t1 = time.perf_counter_ns()
    if status != 201:
        raise _fail("quote", status, quote)
    out("quote", t1 - t0, t1)
    docs = docs_cache.get(quote["product_code"])
    if docs is None:
        path = f"/api/v1/products/{quote['product_code']}/documents"
        status, docs = await conn.request("GET", path)
        t2 = time.perf_counter_ns()
        if status != 200:
            raise _fail("documents", status, docs)
        out("documents", t2 - t1, t2)
        docs_cache[quote["product_code"]] = docs
        t1 = t2
    body: dict[str, Any] = {
        "quote_id": quote["quote_id"],
        "applicant": {"name": "张三", "id_number": id_number},
        "relationship": "self",
        "acknowledgements": {d["code"]: d["content_hash"] for d in docs["documents"]},
    }
    if docs.get("uncertainty_statement"):
        body["uncertainty_statement"] = docs["uncertainty_statement"]
    key = {"Idempotency-Key": uuid.uuid4().hex}
    status, app = await conn.request("POST", "/api/v1/applications", body, key)
    t3 = time.perf_counter_ns()
    if status != 201:
        raise _fail("apply", status, app)
    out("apply", t3 - t1, t3)
    paid_wall = time.time()
    status, paid = await conn.request("POST", f"/sandbox/payments/{app['payment_id']}/succeed")
    t4 = time.perf_counter_ns()
    if status != 200:
        raise _fail("pay", status, paid)
    out("pay", t4 - t3, t4)
    wait, polls = params["poll_first"], 0
    deadline = t3 + int(params["issue_timeout"] * 1e9)
    while True:
        await asyncio.sleep(wait)
        p0 = time.perf_counter_ns()
        status, seen = await conn.request("GET", f"/api/v1/applications/{app['application_id']}")
        t5 = time.perf_counter_ns()
        polls += 1
        if status != 200:
            raise _fail("poll", status, seen)
        out("poll", t5 - p0, t5)
        if seen["status"] == "issued":
            break
        if seen["status"] != "pending_payment":
            raise FlowError(f"poll: application {seen['status']} ({seen.get('decision_reason')})")
        if t5 > deadline:
            raise FlowError(f"poll: not issued within {params['issue_timeout']:g}s")
        wait = min(wait * 2, params["poll_max"])
    return {
        "application_id": app["application_id"],
        "policy_id": seen["policy_id"],
        "paid_wall": paid_wall,
        "pay_to_seen_ns": t5 - t3,
        "flow_ns": t5 - t0,
        "polls": polls,
        "end_ns": t5,
    }


async def _drive_flows(job: dict[str, Any], barrier: Any) -> dict[str, Any]:
    port, tokens = job["port"], job["tokens"]
    steps: list[tuple[str, int, int]] = []  # (step, latency ns, end ns)
    flows: list[dict[str, Any]] = []
    errors: Counter[str] = Counter()
    docs_cache: dict[str, dict[str, Any]] = {}
    counter = iter(range(job["first_flow"], 10**9, job["stride"]))
    barrier.wait()
    start = time.perf_counter_ns()
    window_start = start + int(job["warmup"] * 1e9)
    stop_at = window_start + int(job["seconds"] * 1e9)

    def out(step: str, ns: int, end: int) -> None:
        steps.append((step, ns, end))

    async def customer(k: int) -> None:
        conn = Conn(port, tokens[k])
        await asyncio.sleep(k * 0.002)  # do not all start in the same millisecond
        while time.perf_counter_ns() < stop_at:
            try:
                flow = await one_flow(conn, next(counter), docs_cache, job, out)
            except FlowError as exc:
                errors[exc.kind] += 1
                await asyncio.sleep(0.05)
                continue
            except CONNECTION_ERRORS as exc:
                errors[f"connection error ({type(exc).__name__})"] += 1
                conn.close()
                await asyncio.sleep(0.05)
                continue
            flow["token"] = tokens[k]
            flows.append(flow)
        conn.close()

    await asyncio.gather(*(customer(k) for k in range(len(tokens))))
    return {
        "steps": steps,
        "flows": flows,
        "errors": errors,
        "window": (window_start, stop_at),
        "ended": time.perf_counter_ns(),
    }


def _flows_main(job: dict[str, Any], barrier: Any, results: Any) -> None:
    run_client(_drive_flows, job, barrier, results)


# Phase 1 ---------------------------------------------------------------------------------


@dataclass
class FlowRun:
    seconds: float
    flows: list[dict[str, Any]] = field(default_factory=list)  # every completed flow
    in_window: list[dict[str, Any]] = field(default_factory=list)
    steps: dict[str, list[int]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    busy_cpu_s: float = 0.0
    capacity_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.in_window) / self.seconds if self.seconds else 0.0

    def share(self, cpu_s: float) -> float:
        return 100 * cpu_s / self.capacity_cpu_s if self.capacity_cpu_s else math.nan

    def other_share(self) -> float:
        if not self.capacity_cpu_s:
            return 0.0
        ours = self.server_cpu_s + self.client_cpu_s + self.db_cpu_s
        return max(0.0, self.busy_cpu_s - ours) / self.capacity_cpu_s


def run_flows(
    args: argparse.Namespace, port: int, tokens: list[str], server: Server, postgres: bool
) -> FlowRun:
    """The client processes, each with its share of the customers; CPU is metered over
    the measuring window only (the processes run on through warm-up and drain)."""
    procs = max(1, min(args.client_procs, len(tokens)))
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs + 1)
    results = ctx.Queue()
    params = {
        "port": port,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "poll_first": args.poll_first,
        "poll_max": args.poll_max,
        "issue_timeout": args.issue_timeout,
        "stride": procs,
    }
    children = []
    for p in range(procs):
        job = {**params, "tokens": tokens[p::procs], "first_flow": p}
        children.append(ctx.Process(target=_flows_main, args=(job, barrier, results), daemon=True))
    for child in children:
        child.start()
    run = FlowRun(args.seconds)
    outputs = []
    try:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=60)
        time.sleep(args.warmup)
        pids = [c.pid for c in children if c.pid is not None]
        server0, client0 = process_cpu(server.pids()), process_cpu(pids)
        db0 = process_cpu(command="postgres") if postgres else 0.0
        busy0, total0 = cpu_ticks()
        time.sleep(args.seconds)
        busy1, total1 = cpu_ticks()
        run.server_cpu_s = process_cpu(server.pids()) - server0
        run.client_cpu_s = process_cpu(pids) - client0
        run.db_cpu_s = (process_cpu(command="postgres") - db0) if postgres else 0.0
        tick = os.sysconf("SC_CLK_TCK")
        run.busy_cpu_s, run.capacity_cpu_s = (busy1 - busy0) / tick, (total1 - total0) / tick
        grace = args.issue_timeout + 60
        outputs = [results.get(timeout=grace) for _ in children]
    except queue.Empty:
        raise RuntimeError("a client process died without reporting") from None
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)
    failures = [o["failure"] for o in outputs if "failure" in o]
    if failures:
        raise RuntimeError(f"client process failed: {failures[0]}")
    for out in outputs:
        lo, hi = out["window"]
        run.errors.update(out["errors"])
        run.flows.extend(out["flows"])
        run.in_window.extend(f for f in out["flows"] if lo <= f["end_ns"] < hi)
        for step, ns, end in out["steps"]:
            if lo <= end < hi:
                run.steps.setdefault(step, []).append(ns)
    return run


# Setup and checks --------------------------------------------------------------------------


def run_in_app_env(env: dict[str, str], code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"helper failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout.strip()


REGISTER = """
import json, sys
from covernet.core.db import unit_of_work
from covernet.identity import service
tokens = []
with unit_of_work() as db:
    for i in range(int(sys.argv[1])):
        user = service.register_customer(
            db, mobile=f"1790{i:07d}", password="bench-pass-1", name=f"bench {i}"
        )
        tokens.append(service.open_session(db, user, kind="bearer", user_agent="bench").token)
print(json.dumps(tokens))
"""


def register_customers(env: dict[str, str], count: int) -> list[str]:
    """``count`` customers with bearer tokens, through the identity service (the
    passwords are never used, so they are hashed cheaply)."""
    cheap = {**env, "COVERNET_PASSWORD_TIME_COST": "1", "COVERNET_PASSWORD_MEMORY_KIB": "64"}
    tokens: list[str] = json.loads(run_in_app_env(cheap, REGISTER, str(count)).splitlines()[-1])
    return tokens


@dataclass
class Checks:
    policies: int
    doubled: int  # applications with more than one policy
    orphans: int  # succeeded payments with neither a policy nor a refund
    pending_callbacks: int
    by_status: dict[str, int]
    issued_at: dict[str, float]  # application id -> policies.issued_at (epoch seconds)


def check_database(url: str, wanted: list[str], settle_seconds: float = 20) -> Checks:
    """What the database holds, once the sandbox has delivered every callback it had."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            deadline = time.monotonic() + settle_seconds
            pending_sql = text("SELECT count(*) FROM sandbox_callbacks WHERE delivered_at IS NULL")
            while True:
                pending = int(conn.scalar(pending_sql) or 0)
                conn.rollback()
                if not pending or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            policies = int(conn.scalar(text("SELECT count(*) FROM policies")) or 0)
            doubled = int(
                conn.scalar(
                    text(
                        "SELECT count(*) FROM (SELECT application_id FROM policies "
                        "WHERE application_id IS NOT NULL GROUP BY application_id "
                        "HAVING count(*) > 1) AS d"
                    )
                )
                or 0
            )
            orphans = int(
                conn.scalar(
                    text(
                        "SELECT count(*) FROM payments p WHERE p.status = 'succeeded' "
                        "AND NOT EXISTS (SELECT 1 FROM policies o WHERE o.payment_id = p.id) "
                        "AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.id)"
                    )
                )
                or 0
            )
            by_status = {
                str(s): int(n)
                for s, n in conn.execute(
                    text("SELECT status, count(*) FROM applications GROUP BY status")
                )
            }
            issued: dict[str, float] = {}
            for i in range(0, len(wanted), 1000):
                chunk = wanted[i : i + 1000]
                marks = ", ".join(f":a{j}" for j in range(len(chunk)))
                rows = conn.execute(
                    text(
                        f"SELECT application_id, issued_at FROM policies "  # noqa: S608
                        f"WHERE application_id IN ({marks})"
                    ),
                    {f"a{j}": a for j, a in enumerate(chunk)},
                )
                for app_id, at in rows:
                    issued[str(app_id)] = _epoch(at)
    finally:
        engine.dispose()
    return Checks(policies, doubled, orphans, pending, by_status, issued)


def _epoch(value: Any) -> float:
    """A stored UTC time (datetime, or SQLite's text) as epoch seconds."""
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


def sanity_flow(port: int, token: str) -> None:
    """One flow by hand before any load, so a broken setup fails with its reason."""
    params = {"poll_first": 0.05, "poll_max": 0.5, "issue_timeout": 30}

    async def once() -> None:
        conn = Conn(port, token)
        try:
            await one_flow(conn, 10**8, {}, params, lambda *_: None)
        finally:
            conn.close()

    try:
        asyncio.run(once())
    except FlowError as exc:
        raise RuntimeError(f"a single flow failed: {exc.kind}") from exc


# Phase 2 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyReads(Endpoint):
    """``GET /api/v1/policies/{id}``, each request with its owner's token."""

    pairs: tuple[tuple[str, str], ...] = ()  # (policy id, token)

    def raw_requests(self, port: int) -> list[bytes]:
        return [
            (
                f"GET /api/v1/policies/{policy_id} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
            for policy_id, token in self.pairs
        ]


@dataclass
class ReadResult:
    saturation: Run
    half: Run
    rate: float


def run_reads(args: argparse.Namespace, bench: Bench, flows: list[dict[str, Any]]) -> ReadResult:
    pairs = tuple((f["policy_id"], f["token"]) for f in flows[: args.read_policies])
    if not pairs:
        raise RuntimeError("phase 1 completed no flow: no policy to read")
    endpoint = PolicyReads("GET  /api/v1/policies/{id}", "GET", "/api/v1/policies", 200, (), pairs)
    port, procs = bench.server.port, args.client_procs

    def closed(seconds: float) -> Run:
        return builtin_run(
            endpoint, port, mode="closed", procs=procs, seconds=seconds,
            connections=args.connections,
        )  # fmt: skip

    def open_loop(rate: float) -> Run:
        return builtin_run(
            endpoint, port, mode="open", procs=procs, seconds=args.read_seconds, rate=rate,
            max_connections=args.max_connections, grace=5.0,
        )  # fmt: skip

    if args.warmup > 0:
        say(f"policy reads: warm-up {args.warmup:g}s")
        closed(args.warmup)
    say(f"policy reads: saturation {args.read_seconds:g}s, {args.connections} connections")
    sat = bench.measured(lambda: closed(args.read_seconds))
    rate = sat.rps / 2
    say(f"policy reads: {sat.rps:,.0f} req/s; half load {rate:,.0f} req/s")
    time.sleep(1)
    half = bench.measured(lambda: open_loop(rate))
    return ReadResult(sat, half, rate)


# Report ----------------------------------------------------------------------------------


def ms(values: list[int], q: float) -> str:
    value = percentile(values, q) / 1e6
    return "—" if math.isnan(value) else f"{value:,.1f}"


def report(
    args: argparse.Namespace,
    db_kind: str,
    run: FlowRun,
    checks: Checks,
    reads: ReadResult | None,
) -> bool:
    postgres = db_kind.startswith("PostgreSQL")
    cpus = os.cpu_count() or 0
    print()
    print("Covernet purchase benchmark")
    print(f"  machine    {cpus} CPUs, {cpu_model()}, {platform.system()}")
    print(f"  python     {platform.python_version()}")
    print(f"  database   {db_kind}")
    print(f"  server     covernet serve --workers {args.workers} (uvicorn) on {HOST}; callbacks by")
    print("             the app's sandbox deliverer (COVERNET_ENV=development)")
    print(
        f"  load       {args.customers} customers, one keep-alive connection each, closed loop, "
        f"{args.client_procs} client process(es);"
    )
    print(
        f"             {args.warmup:g}s warm-up, {args.seconds:g}s measured; polls after "
        f"{args.poll_first * 1000:g} ms, doubling up to {args.poll_max * 1000:g} ms"
    )
    print()
    flows = run.in_window
    cpu_flow = 1000 * (run.server_cpu_s + run.db_cpu_s) / len(flows) if flows else math.nan
    goal_ok = run.rate >= GOAL_FLOWS
    print(
        f"complete flows/s   {run.rate:,.1f}   ({len(flows):,} in {run.seconds:g}s)   "
        f"goal >= {GOAL_FLOWS:g} {'MET' if goal_ok else 'NOT MET'}"
        + ("" if postgres else " (the goal is for PostgreSQL)")
    )
    print(
        f"CPU per flow       {cpu_flow:,.1f} ms (server"
        + (f" {1000 * run.server_cpu_s / len(flows):,.1f} + PostgreSQL "
           f"{1000 * run.db_cpu_s / len(flows):,.1f}" if flows and postgres else "")
        + ")"
    )  # fmt: skip
    shares = f"server {run.share(run.server_cpu_s):.0f}%"
    if postgres:
        shares += f", PostgreSQL {run.share(run.db_cpu_s):.0f}%"
    shares += f", client {run.share(run.client_cpu_s):.0f}%, other {100 * run.other_share():.0f}%"
    print(f"CPU (of all CPUs)  {shares}")
    print()
    print(f"{'step':<44}{'count':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for step in STEPS:
        values = run.steps.get(step, [])
        top = f"{max(values) / 1e6:,.1f}" if values else "—"
        label = STEP_LABELS[step]
        print(f"{label:<44}{len(values):>8,}{ms(values, 0.5):>9}{ms(values, 0.99):>9}{top:>9}")
    polls = [f["polls"] for f in flows]
    seen = [f["pay_to_seen_ns"] for f in flows]
    server_side = [
        int((checks.issued_at[f["application_id"]] - f["paid_wall"]) * 1e9)
        for f in flows
        if f["application_id"] in checks.issued_at
    ]
    whole = [f["flow_ns"] for f in flows]
    for label, values in (
        ("pay → issued (policies.issued_at)", server_side),
        ("pay → issued seen by the client's poll", seen),
        ("whole flow", whole),
    ):
        top = f"{max(values) / 1e6:,.1f}" if values else "—"
        print(f"{label:<44}{len(values):>8,}{ms(values, 0.5):>9}{ms(values, 0.99):>9}{top:>9}")
    if polls:
        print(f"polls per flow     {sum(polls) / len(polls):.2f} on average, at most {max(polls)}")
    print()
    print(f"errors             {run.errors.total()}")
    for kind, count in sorted(run.errors.items()):
        print(f"  {count:>8}  {kind}")
    completed = len(run.flows)
    consistent = checks.policies == completed
    print()
    print(
        f"policies in the database {checks.policies:,} = completed flows {completed:,} "
        f"(warm-up, window and drain): {'OK' if consistent else 'MISMATCH'}"
    )
    print(f"applications with two policies      {checks.doubled}")
    print(f"succeeded payments without policy or refund   {checks.orphans}")
    print(f"sandbox callbacks still undelivered {checks.pending_callbacks}")
    print("applications by status             " + ", ".join(
        f"{s} {n:,}" for s, n in sorted(checks.by_status.items())
    ))  # fmt: skip
    sound = consistent and not checks.doubled and not checks.orphans
    if run.other_share() > NOISE_WARNING:
        print(
            f"WARNING: other processes used {run.other_share():.0%} of the CPUs during the "
            "window; run again on a quiet machine"
        )
    p99_ok = True
    if reads is not None:
        s, h = reads.saturation, reads.half
        print()
        print("GET /api/v1/policies/{id} with a bearer token")
        print(
            f"  saturation   {s.rps:,.0f} req/s, {args.connections} connections, "
            f"server CPU {s.cpu_ms_per_request:.2f} ms/req, CPU% s/c/o {s.cpu_shares()}, "
            f"errors {s.errors.total()}"
        )
        top = max(h.latencies_ns) / 1e6 if h.latencies_ns else math.nan
        p99 = h.pct_ms(0.99)
        p99_ok = p99 <= GOAL_POLICY_P99_MS
        print(
            f"  half load    {h.rps:,.0f} req/s (open loop), p50 {h.pct_ms(0.5):.2f} ms, "
            f"p99 {p99:.2f} ms, max {top:.1f} ms, client lag p99 "
            f"{percentile(h.lag_ns, 0.99) / 1e6:.2f} ms, CPU% s/c/o {h.cpu_shares()}, "
            f"errors {h.errors.total()}"
        )
        print(
            f"  p99 at half load {p99:.2f} ms   goal <= {GOAL_POLICY_P99_MS:g} ms  "
            f"{'MET' if p99_ok else 'NOT MET'}"
        )
        for kind, count in sorted((s.errors + h.errors).items()):
            print(f"  {count:>8}  {kind}")
        noisy = max(s.other_share(), h.other_share())
        if noisy > NOISE_WARNING:
            print(f"  WARNING: other processes used up to {noisy:.0%} of the CPUs")
    return goal_ok and p99_ok and sound and not run.errors


# Main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20, help="measured flow window (20)")
    p.add_argument("--warmup", type=float, default=3, help="discarded warm-up (3)")
    p.add_argument("--workers", type=int, default=2, help="server worker processes (2)")
    p.add_argument(
        "--database-url",
        default=DEFAULT_POSTGRES,
        help=f"PostgreSQL URL (a schema is made for the run; {DEFAULT_POSTGRES}), "
        "or 'sqlite' for a fresh SQLite file",
    )
    p.add_argument("--schema", default="bench_buy", help="PostgreSQL schema (bench_buy)")
    p.add_argument("--customers", type=int, default=8, help="concurrent customers (8)")
    p.add_argument("--client-procs", type=int, default=1, help="client processes (1)")
    p.add_argument("--poll-first", type=float, default=0.05, help="first poll after (0.05 s)")
    p.add_argument("--poll-max", type=float, default=0.5, help="longest poll interval (0.5 s)")
    p.add_argument("--issue-timeout", type=float, default=30, help="pay → issued limit (30 s)")
    p.add_argument("--read-seconds", type=float, default=10, help="each policy-read phase (10)")
    p.add_argument("--read-policies", type=int, default=5000, help="policies to read (5000)")
    p.add_argument("--connections", type=int, default=16, help="read saturation connections")
    p.add_argument("--max-connections", type=int, default=64, help="open-loop connection cap")
    p.add_argument("--no-reads", action="store_true", help="skip phase 2")
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal is not met")
    return p.parse_args(argv)


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.generator = "builtin"  # for quote.Bench: the reads carry per-request tokens
    signal.signal(signal.SIGTERM, _terminate)
    url = None if args.database_url in ("sqlite", "") else args.database_url
    reads = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="covernet-buy-") as tmp_name,
            database(url, args.schema, Path(tmp_name)) as (app_url, db_kind),
        ):
            tmp = Path(tmp_name)
            port = free_port()
            env = app_env(app_url)
            env.update(
                COVERNET_PUBLIC_URL=f"http://{HOST}:{port}",
                COVERNET_PAYMENT_PROVIDER="sandbox",
                COVERNET_STAFF_MFA="optional",
            )
            say(f"preparing the database: covernet demo ({db_kind})")
            prepare(env)
            say(f"registering {args.customers} customers")
            tokens = register_customers(env, args.customers + 1)
            server = Server(env, args.workers, port, tmp / "server.log")
            postgres = db_kind.startswith("PostgreSQL")
            try:
                say(f"starting covernet serve --workers {args.workers} on port {port}")
                server.start()
                server.wait_healthy()
                before = check_database(app_url, [], settle_seconds=0).policies  # the demo's
                sanity_flow(port, tokens[-1])
                say(
                    f"flows: {args.customers} customers, {args.warmup:g}s warm-up + "
                    f"{args.seconds:g}s measured"
                )
                run = run_flows(args, port, tokens[:-1], server, postgres)
                say(f"{run.rate:,.1f} flows/s; checking the database")
                wanted = [f["application_id"] for f in run.in_window]
                checks = check_database(app_url, wanted)
                checks.policies -= before + 1  # the demo's and the flow made by hand
                if not args.no_reads:
                    bench = Bench(args, server, tmp, postgres)
                    reads = run_reads(args, bench, run.flows)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\nserver log (tail):\n{server.log_tail()}") from exc
            finally:
                server.stop()
    except KeyboardInterrupt:
        print("\ninterrupted; server stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 2
    ok = report(args, db_kind, run, checks, reads)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
