"""Benchmark partner batch issuance, ``POST /api/v1/partner/policies:batch``, over HTTP.

Run from the project root::

    .venv/bin/python bench/issue.py [--seconds 10] [--clients 4] [--databases sqlite,postgresql]

For each database (SQLite in a temp dir with ``PRAGMA synchronous=FULL``; PostgreSQL at
``--postgres-url`` in a schema of its own, with ``synchronous_commit`` as the server has
it, which must be ``on``), it runs ``covernet demo``, creates a partner API key for
``demo-shop``, starts ``covernet serve --workers N`` on a free port and sends batches of
``--batch`` (1,000) new return-shipping orders from ``--clients`` keep-alive connections
in a client process, closed loop, for ``--seconds``.  It prints policies/s, batch
latency p50/p99, the CPU used per 1,000 policies, and checks that the policies in the
database are exactly the ones the answers said were issued.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import platform
import queue
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The benchmark next door: database, server and CPU meters.
from clientproc import run_client
from quote import (
    HOST,
    ROOT,
    Server,
    app_env,
    children_cpu,
    cpu_model,
    cpu_ticks,
    database,
    free_port,
    percentile,
    prepare,
    process_cpu,
    say,
)

URL_PATH = "/api/v1/partner/policies:batch"
PARTNER = "demo-shop"
GOALS = {"SQLite": 5_000.0, "PostgreSQL": 10_000.0}  # policies/s
CONNECTION_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError, ValueError)
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
COUNTS = re.compile(rb'"issued":(\d+),"duplicates":(\d+),"rejected":(\d+)')
NOISE_WARNING = 0.10


# Client (a process of its own) -------------------------------------------------------


def batch_body(tag: str, size: int, rng: random.Random) -> bytes:
    """``size`` new orders; amounts spread over all premium bands (no two priced alike
    by luck of a small set of amounts)."""
    items = [
        {
            "external_ref": f"{tag}-{i}",
            "product_code": "return-shipping",
            "plan_code": "standard",
            "order_amount_fen": rng.randint(100, 200_000),
            "holder_ref": f"buyer-{rng.randint(1, 10**9)}",
        }
        for i in range(size)
    ]
    return orjson.dumps({"items": items})


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = CONTENT_LENGTH.search(head)
    if length is None:
        raise ConnectionError("response without content-length")
    return int(head[9:12]), await reader.readexactly(int(length.group(1)))


async def _drive(job: dict[str, Any], barrier: Any) -> dict[str, Any]:
    port, size, key = job["port"], job["batch"], job["key"]
    head = (
        f"POST {URL_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nX-API-Key: {key}\r\n"
        "Content-Type: application/json\r\n"
    ).encode()
    latencies: list[int] = []
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    conns = [await asyncio.open_connection(HOST, port) for _ in range(job["clients"])]
    barrier.wait()
    start = time.perf_counter_ns()
    deadline = asyncio.get_running_loop().time() + job["seconds"]

    async def loop(k: int) -> None:
        """Send batches until the deadline; an answer on its way is always awaited, so
        every policy committed is counted."""
        reader, writer = conns[k]
        rng = random.Random(f"{job['tag']}-{k}")
        seq = 0
        while asyncio.get_running_loop().time() < deadline:
            seq += 1
            body = batch_body(f"{job['tag']}-{k}-{seq}", size, rng)
            request = head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            t0 = time.perf_counter_ns()
            try:
                status, answer = await _exchange(reader, writer, request)
            except CONNECTION_ERRORS as exc:
                errors[f"connection error ({type(exc).__name__})"] += 1
                writer.close()
                await asyncio.sleep(0.05)
                with contextlib.suppress(OSError):
                    reader, writer = await asyncio.open_connection(HOST, port)
                continue
            latencies.append(time.perf_counter_ns() - t0)
            found = COUNTS.search(answer, 0, 400) if status == 200 else None
            if found is None:
                errors[f"status {status}"] += 1
                continue
            counts["batches"] += 1
            counts["issued"] += int(found.group(1))
            counts["duplicates"] += int(found.group(2))
            counts["rejected"] += int(found.group(3))
        writer.close()

    await asyncio.gather(*(loop(k) for k in range(len(conns))))
    elapsed = (time.perf_counter_ns() - start) / 1e9  # until the last answer
    return {"latencies": latencies, "counts": counts, "errors": errors, "seconds": elapsed}


def _client_main(job: dict[str, Any], barrier: Any, results: Any) -> None:
    run_client(_drive, job, barrier, results)


@dataclass
class Run:
    seconds: float
    latencies_ns: list[int] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    busy_cpu_s: float = 0.0
    capacity_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.counts["issued"] / self.seconds if self.seconds else 0.0

    def ms(self, q: float) -> float:
        return percentile(self.latencies_ns, q) / 1e6

    def shares(self) -> str:
        if not self.capacity_cpu_s:
            return "—"
        other = self.busy_cpu_s - self.server_cpu_s - self.client_cpu_s - self.db_cpu_s
        parts = (self.server_cpu_s, self.db_cpu_s, self.client_cpu_s, max(0.0, other))
        return "/".join(f"{100 * p / self.capacity_cpu_s:.0f}" for p in parts)

    def other_share(self) -> float:
        if not self.capacity_cpu_s:
            return 0.0
        other = self.busy_cpu_s - self.server_cpu_s - self.client_cpu_s - self.db_cpu_s
        return max(0.0, other) / self.capacity_cpu_s


def load(port: int, key: str, *, seconds: float, clients: int, batch: int, tag: str) -> Run:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    job = {"port": port, "key": key, "seconds": seconds, "clients": clients}
    job.update(batch=batch, tag=tag)
    child = ctx.Process(target=_client_main, args=(job, barrier, results), daemon=True)
    child.start()
    try:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=30)
        out = results.get(timeout=seconds + 120)
    except queue.Empty:
        raise RuntimeError("the client process died without reporting") from None
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.terminate()
            child.join(timeout=5)
    if "failure" in out:
        raise RuntimeError(f"client failed: {out['failure']}")
    return Run(out["seconds"], out["latencies"], out["counts"], out["errors"])


# Database facts ----------------------------------------------------------------------


def run_in_app_env(env: dict[str, str], code: str) -> str:
    """Python run with the app's settings (its engine, its pragmas); its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"helper failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout.strip()


def create_partner_key(env: dict[str, str]) -> str:
    return run_in_app_env(
        env,
        "from covernet.core.db import unit_of_work\n"
        "from covernet.identity.models import Role\n"
        "from covernet.identity.service import create_api_key\n"
        "with unit_of_work() as db:\n"
        f"    print(create_api_key(db, name={PARTNER!r}, role=Role.partner).key)\n",
    ).splitlines()[-1]


def durability(env: dict[str, str], postgres: bool) -> str:
    """The durability the app's own connections run with, asked through its engine."""
    if postgres:
        code = (
            "from sqlalchemy import text\n"
            "from covernet.core.db import get_engine\n"
            "with get_engine().connect() as c:\n"
            "    print('synchronous_commit=' + c.scalar(text('SHOW synchronous_commit'))"
            " + ', fsync=' + c.scalar(text('SHOW fsync')))\n"
        )
    else:
        code = (
            "from covernet.core.db import get_engine\n"
            "c = get_engine().raw_connection()\n"
            "names = {0: 'OFF', 1: 'NORMAL', 2: 'FULL', 3: 'EXTRA'}\n"
            "s = c.execute('PRAGMA synchronous').fetchone()[0]\n"
            "j = c.execute('PRAGMA journal_mode').fetchone()[0]\n"
            "print(f'synchronous={names[s]}, journal_mode={j}')\n"
        )
    return run_in_app_env(env, code)


def stored_policies(url: str) -> int:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM policies WHERE partner_code = :p")
            return int(conn.scalar(query, {"p": PARTNER}) or 0)
    finally:
        engine.dispose()


# One database ------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str  # SQLite | PostgreSQL
    description: str
    durability: str
    run: Run
    issued_total: int  # warm-up and run, as the answers said
    stored: int


def bench_one(args: argparse.Namespace, url: str | None, tmp: Path) -> Outcome:
    postgres = url is not None
    schema = args.schema
    with database(url, schema, tmp) as (app_url, description):
        kind = "PostgreSQL" if postgres else "SQLite"
        env = app_env(app_url)
        if not postgres:
            env["COVERNET_SQLITE_SYNCHRONOUS"] = "FULL"
        say(f"{kind}: covernet demo")
        prepare(env)
        key = create_partner_key(env)
        facts = durability(env, postgres)
        if postgres and "synchronous_commit=on" not in facts:
            raise RuntimeError(f"PostgreSQL is not durable here: {facts}")
        if not postgres and "synchronous=FULL" not in facts:
            raise RuntimeError(f"SQLite is not durable here: {facts}")
        server = Server(env, args.workers, free_port(), tmp / f"server-{kind}.log")
        try:
            say(f"{kind}: covernet serve --workers {args.workers} on port {server.port}")
            server.start()
            server.wait_healthy()
            tag = f"{int(time.time())}"
            issued = 0
            if args.warmup > 0:
                say(f"{kind}: warm-up {args.warmup:g}s")
                warm = load(
                    server.port, key, seconds=args.warmup, clients=args.clients,
                    batch=args.batch, tag=f"w{tag}",
                )  # fmt: skip
                issued += warm.counts["issued"]
                time.sleep(1)
            say(f"{kind}: {args.seconds:g}s, {args.clients} clients, batches of {args.batch:,}")
            server0, client0 = process_cpu(server.pids()), children_cpu()
            db0 = process_cpu(command="postgres") if postgres else 0.0
            busy0, total0 = cpu_ticks()
            run = load(
                server.port, key, seconds=args.seconds, clients=args.clients,
                batch=args.batch, tag=f"r{tag}",
            )  # fmt: skip
            busy1, total1 = cpu_ticks()
            tick = os.sysconf("SC_CLK_TCK")
            run.server_cpu_s = process_cpu(server.pids()) - server0
            run.client_cpu_s = children_cpu() - client0
            run.db_cpu_s = (process_cpu(command="postgres") - db0) if postgres else 0.0
            run.busy_cpu_s, run.capacity_cpu_s = (busy1 - busy0) / tick, (total1 - total0) / tick
            issued += run.counts["issued"]
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nserver log (tail):\n{server.log_tail()}") from exc
        finally:
            server.stop()
        stored = stored_policies(app_url)
        return Outcome(kind, description, facts, run, issued, stored)


# Report ------------------------------------------------------------------------------


def report(args: argparse.Namespace, outcomes: list[Outcome]) -> bool:
    cpus = os.cpu_count() or 0
    print()
    print("Covernet partner batch issuance benchmark")
    print(f"  machine    {cpus} CPUs, {cpu_model()}, {platform.system()}")
    print(f"  python     {platform.python_version()}")
    print(f"  server     covernet serve --workers {args.workers} (uvicorn) on {HOST}")
    print(
        f"  load       1 client process, {args.clients} keep-alive connections, closed loop, "
        f"batches of {args.batch:,} new return-shipping orders, {args.seconds:g}s"
    )
    print("  note       client, server and database share this machine; CPU% s/d/c/o: share")
    print("             of all CPUs used by server / database / client / anything else")
    print()
    head = ("database", "policies/s", "batches/s", "p50 ms", "p99 ms", "CPU ms/1k")
    head += ("CPU% s/d/c/o", "errors")
    widths = (12, 11, 10, 8, 8, 10, 14, 7)
    print(_line(head, widths))
    print("-" * (sum(widths) + len(widths) - 1))
    ok = True
    for o in outcomes:
        r = o.run
        issued = r.counts["issued"]
        cpu_per_k = 1000 * 1000 * (r.server_cpu_s + r.db_cpu_s) / issued if issued else float("nan")
        cells = (o.kind, f"{r.rate:,.0f}", f"{r.counts['batches'] / r.seconds:,.1f}")
        cells += (f"{r.ms(0.5):.0f}", f"{r.ms(0.99):.0f}", f"{cpu_per_k:,.0f}", r.shares())
        cells += (str(r.errors.total()),)
        print(_line(cells, widths))
    print()
    for o in outcomes:
        r = o.run
        goal = GOALS[o.kind]
        met = r.rate >= goal
        consistent = o.stored == o.issued_total
        clean = not r.errors and not r.counts["duplicates"] and not r.counts["rejected"]
        ok = ok and met and consistent and clean
        print(f"{o.kind}: {o.description}; {o.durability}")
        print(f"  policies/s {r.rate:,.0f}   goal >= {goal:,.0f}  {'MET' if met else 'NOT MET'}")
        print(
            f"  rows in the database {o.stored:,} = issued in the answers {o.issued_total:,} "
            f"(warm-up included): {'OK' if consistent else 'MISMATCH'}"
        )
        if r.counts["duplicates"] or r.counts["rejected"]:
            print(f"  duplicates {r.counts['duplicates']}, rejected {r.counts['rejected']}")
        for kind, count in sorted(r.errors.items()):
            print(f"  {count:>8}  {kind}")
        if r.other_share() > NOISE_WARNING:
            print(
                f"  WARNING: other processes used {r.other_share():.0%} of the CPUs; "
                "run again on a quiet machine"
            )
    return ok


def _line(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    first, *rest = zip(cells, widths, strict=True)
    return " ".join([first[0].ljust(first[1]), *(c.rjust(w) for c, w in rest)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10, help="length of the measured run (10)")
    p.add_argument("--warmup", type=float, default=2, help="discarded warm-up (2)")
    p.add_argument("--workers", type=int, default=2, help="server worker processes (2)")
    p.add_argument("--clients", type=int, default=4, help="concurrent connections (4)")
    p.add_argument("--batch", type=int, default=1_000, help="items per batch (1000)")
    p.add_argument(
        "--databases", default="sqlite,postgresql", help="which to run (sqlite,postgresql)"
    )
    p.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://127.0.0.1:5432/test",
        help="PostgreSQL database (a schema is made for the run)",
    )
    p.add_argument("--schema", default="bench_issue", help="PostgreSQL schema (bench_issue)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal is not met")
    return p.parse_args(argv)


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    wanted = [d.strip() for d in args.databases.split(",") if d.strip()]
    outcomes = []
    try:
        for name in wanted:
            if name not in ("sqlite", "postgresql"):
                raise SystemExit(f"unknown database {name}: sqlite or postgresql")
            with tempfile.TemporaryDirectory(prefix="covernet-issue-") as tmp:
                url = args.postgres_url if name == "postgresql" else None
                try:
                    outcomes.append(bench_one(args, url, Path(tmp)))
                except (OSError, sqlite3.Error) as exc:
                    print(f"\n{name}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted; server stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 2
    ok = report(args, outcomes)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
