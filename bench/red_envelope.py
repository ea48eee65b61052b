"""Benchmark red envelope grabs, ``POST /api/v1/red-envelopes/{id}/grab``, over HTTP.

Run from the project root::

    .venv/bin/python bench/red_envelope.py [--clients 256] [--envelopes 200] [--workers 2]

It runs ``covernet demo`` on PostgreSQL (``--postgres-url``, a schema of its own, or
SQLite with ``--databases sqlite``), creates ``--clients`` customers with bearer tokens
and ``--envelopes`` paid envelopes of 100 shares, starts ``covernet serve --workers N``
and then:

1. **hot**: every client connection grabs the same envelope, then the next one, as fast
   as it can (one hot envelope at a time, each sold out by its 100 first grabs);
2. **sold out**: every connection keeps grabbing an envelope that is sold out.

It prints successful grabs/s and sold-out answers/s with p50/p99 latency, then checks the
database: the grabs answered 201 are exactly the shares grabbed, no envelope has more
grabs than shares and nobody holds two shares of one envelope.  The envelopes are opened
directly (``social.service.on_gift_paid``) instead of through the sandbox's callback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import queue
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clientproc import run_client
from quote import HOST, ROOT, Server, app_env, database, free_port, percentile, prepare, say

GOALS = {"grabs/s": 2_000.0, "grabs/s across many": 5_000.0, "sold-out/s": 8_000.0}
CONNECTION_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError, ValueError)
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
SHARES = 100

SETUP = """
import json, sys
from covernet.core.db import unit_of_work
from covernet.identity import service as identity
from covernet.identity.access import Principal
from covernet.identity.models import Role, User
from covernet.payments import service as payments
from covernet.social import grabs, service

clients, envelopes, many = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
with unit_of_work() as db:
    users = [User(role="customer", name=f"客户{i}", password_hash="-") for i in range(clients + 2)]
    db.add_all(users)
    db.flush()
    tokens = [identity.open_session(db, u, kind="bearer", user_agent="bench").token for u in users]
    sender = Principal(role=Role.customer, user_id=users[-1].id)
    made = []
    for n in range(envelopes + many + 1):
        data = service.EnvelopeIn(
            product_code="accident-monthly", plan_code="basic",
            shares=1 if n == envelopes + many else 100, split="random",
        )
        envelope, _ = service.create(db, sender, data)
        service.on_gift_paid(db, payments.get_payment(db, envelope.payment_id))
        made.append(envelope.id)
    sold = made.pop()
    grabs.grab(db, Principal(role=Role.customer, user_id=users[-2].id), sold)
print(json.dumps({
    "tokens": tokens[:clients], "envelopes": made[:envelopes], "many": made[envelopes:],
    "sold_out": sold,
}))
"""

CHECK = """
import json
from sqlalchemy import func, select
from covernet.core.db import unit_of_work
from covernet.social.models import RedEnvelope, RedEnvelopeShare as S

with unit_of_work() as db:
    grabbed = db.scalar(select(func.count()).where(S.grabbed_by.is_not(None)))
    pairs = db.scalar(
        select(func.count()).select_from(
            select(S.envelope_id, S.grabbed_by).where(S.grabbed_by.is_not(None)).distinct()
            .subquery()
        )
    )
    per = db.execute(
        select(S.envelope_id, func.count()).where(S.grabbed_by.is_not(None))
        .group_by(S.envelope_id)
    ).all()
    totals = dict(db.execute(select(RedEnvelope.id, RedEnvelope.shares_total)).all())
over = sum(1 for e, n in per if n > totals[e])
print(json.dumps({"grabbed": grabbed, "pairs": pairs, "over": over}))
"""


def run_in_app_env(env: dict[str, str], code: str, *args: str) -> Any:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


# Client (a process of its own) -------------------------------------------------------


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes, int]:
    """Send one request, read its answer: status, body and nanoseconds taken."""
    t0 = time.perf_counter_ns()
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    found = CONTENT_LENGTH.search(head)
    body = await reader.readexactly(int(found.group(1))) if found else b""
    return int(head[9:12]), body, time.perf_counter_ns() - t0


def _count(out: dict[str, Any], phase: str, status: int, body: bytes, took: int) -> None:
    """One answer of ``phase``: 201 a grab (hot, many), 409 sold out (hot, sold), anything
    else counted by its status and body as unexpected."""
    if status == 201 and phase != "sold":
        out[phase]["ok"] += 1
        out[f"{phase}_lat"].append(took)
    elif status == 409 and b"sold_out" in body and phase != "many":
        out[phase]["sold_out"] += 1
        out["sold_lat" if phase == "hot" else "sold_only_lat"].append(took)
    else:
        out[phase][f"{status}:{body[:60]!r}"] += 1


def _grab_request(envelope_id: str, token: str) -> bytes:
    return (
        f"POST /api/v1/red-envelopes/{envelope_id}/grab HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def _connection(job: dict[str, Any], token: str, out: dict[str, Any]) -> None:
    reader, writer = await asyncio.open_connection(HOST, job["port"])
    try:
        for envelope_id in job["envelopes"]:  # hot: each envelope in turn
            _count(out, "hot", *await _request(reader, writer, _grab_request(envelope_id, token)))
        raw = _grab_request(job["sold_out"], token)
        deadline = out["sold_start"] + job["seconds"]
        while time.monotonic() < deadline:
            _count(out, "sold", *await _request(reader, writer, raw))
    except CONNECTION_ERRORS as exc:
        out["errors"][type(exc).__name__] += 1
    finally:
        writer.close()


async def _many(job: dict[str, Any], index: int, token: str, out: dict[str, Any]) -> None:
    """Grab ``many_grabs`` envelopes of the many, starting at this client's own: at any
    moment the clients are spread over as many envelopes as there are clients."""
    envelopes = job["many"]
    reader, writer = await asyncio.open_connection(HOST, job["port"])
    try:
        for step in range(job["many_grabs"]):
            raw = _grab_request(envelopes[(index + step) % len(envelopes)], token)
            _count(out, "many", *await _request(reader, writer, raw))
    except CONNECTION_ERRORS as exc:
        out["errors"][type(exc).__name__] += 1
    finally:
        writer.close()


async def _drive(job: dict[str, Any], barrier: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hot": Counter(),
        "many": Counter(),
        "sold": Counter(),
        "errors": Counter(),
        "hot_lat": [],
        "many_lat": [],
        "sold_lat": [],
        "sold_only_lat": [],
        "hot_end": 0.0,
    }
    await asyncio.to_thread(barrier.wait)
    out["start"] = time.monotonic()
    out["sold_start"] = out["start"]  # refined below once the hot phase is over
    hot = [asyncio.create_task(_hot_only(job, t, out)) for t in job["tokens"]]
    await asyncio.gather(*hot)
    out["hot_end"] = time.monotonic()
    await asyncio.to_thread(barrier.wait)  # every process finished the hot phase
    out["many_start"] = time.monotonic()
    if job["many"]:
        await asyncio.gather(
            *(_many(job, i, t, out) for i, t in zip(job["indexes"], job["tokens"], strict=True))
        )
    out["many_end"] = time.monotonic()
    await asyncio.to_thread(barrier.wait)  # every process finished the many phase
    out["sold_start"] = time.monotonic()
    await asyncio.gather(*(_sold_only(job, t, out) for t in job["tokens"]))
    out["sold_end"] = time.monotonic()
    return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in out.items()}


async def _hot_only(job: dict[str, Any], token: str, out: dict[str, Any]) -> None:
    await _connection({**job, "seconds": 0}, token, out)


async def _sold_only(job: dict[str, Any], token: str, out: dict[str, Any]) -> None:
    await _connection({**job, "envelopes": []}, token, out)


def _client_main(job: dict[str, Any], barrier: Any, results: Any) -> None:
    run_client(_drive, job, barrier, results)


def load(
    port: int, setup: dict[str, Any], *, processes: int, seconds: float, many_grabs: int
) -> list[Any]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    tokens = setup["tokens"]
    children = []
    for i in range(processes):
        job = {
            "port": port,
            "tokens": tokens[i::processes],
            "indexes": list(range(len(tokens)))[i::processes],
            "envelopes": setup["envelopes"],
            "many": setup["many"],
            "many_grabs": many_grabs,
            "sold_out": setup["sold_out"],
            "seconds": seconds,
        }
        child = ctx.Process(target=_client_main, args=(job, barrier, results), daemon=True)
        child.start()
        children.append(child)
    outs = []
    try:
        for _ in range(3):
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=600)
        for _ in children:
            outs.append(results.get(timeout=seconds + 600))
    except queue.Empty:
        raise RuntimeError("a client process died without reporting") from None
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.terminate()
    failed = [o["failure"] for o in outs if "failure" in o]
    if failed:
        raise RuntimeError(f"client failed: {failed[0]}")
    return outs


def _pct(values: list[int], q: float) -> float:
    return percentile(values, q) / 1e6 if values else 0.0


def bench(args: argparse.Namespace, url: str | None, tmp: Path) -> bool:
    with database(url, args.schema, tmp) as (app_url, description):
        env = app_env(app_url)
        say(f"{description}: covernet demo")
        prepare(env)
        say(f"{args.clients} customers, {args.envelopes} envelopes of {SHARES} shares")
        many = args.many_envelopes if args.many_grabs else 0
        setup = run_in_app_env(env, SETUP, str(args.clients), str(args.envelopes), str(many))
        server = Server(env, args.workers, free_port(), tmp / "server.log")
        try:
            server.start()
            server.wait_healthy()
            say(f"covernet serve --workers {args.workers}; {args.processes} client processes")
            outs = load(
                server.port,
                setup,
                processes=args.processes,
                seconds=args.seconds,
                many_grabs=args.many_grabs,
            )
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nserver log (tail):\n{server.log_tail()}") from exc
        finally:
            server.stop()
        check = run_in_app_env(env, CHECK)
    hot, many, sold, errors = Counter[str](), Counter[str](), Counter[str](), Counter[str]()
    for o in outs:
        hot.update(o["hot"])
        many.update(o["many"])
        sold.update(o["sold"])
        errors.update(o["errors"])
    hot_s = max(o["hot_end"] for o in outs) - min(o["start"] for o in outs)
    many_s = max(o["many_end"] for o in outs) - min(o["many_start"] for o in outs)
    sold_s = max(o["sold_end"] for o in outs) - min(o["sold_start"] for o in outs)
    hot_lat = [x for o in outs for x in o["hot_lat"]]
    sold_lat = [x for o in outs for x in o["sold_lat"]]
    sold_only = [x for o in outs for x in o["sold_only_lat"]]
    many_lat = [x for o in outs for x in o["many_lat"]]
    rates = {
        "grabs/s": hot["ok"] / hot_s if hot_s else 0.0,
        "grabs/s across many": many["ok"] / many_s if many_s and many else 0.0,
        "sold-out/s": sold["sold_out"] / sold_s if sold_s else 0.0,
    }
    print()
    print(f"Covernet red envelope benchmark — {description}, {args.workers} app processes")
    ms = {
        name: (_pct(values, 0.50), _pct(values, 0.99))
        for name, values in (
            ("hot", hot_lat),
            ("many", many_lat),
            ("sold", sold_lat),
            ("only", sold_only),
        )
    }
    print(
        f"  hot phase {hot_s:6.2f}s {hot['ok']:>7,} grabs   {rates['grabs/s']:>8,.0f}/s"
        f"  p50 {ms['hot'][0]:6.2f} ms  p99 {ms['hot'][1]:6.2f} ms"
        f"  (+{hot['sold_out']:,} sold out, p99 {ms['sold'][1]:.2f} ms)"
    )
    if many:
        print(
            f"  many      {many_s:6.2f}s {many['ok']:>7,} grabs   "
            f"{rates['grabs/s across many']:>8,.0f}/s  p50 {ms['many'][0]:6.2f} ms  "
            f"p99 {ms['many'][1]:6.2f} ms  ({len(setup['many'])} envelopes, "
            f"{args.many_grabs} grabs per client)"
        )
    print(
        f"  sold out  {sold_s:6.2f}s {sold['sold_out']:>7,} answers {rates['sold-out/s']:>8,.0f}/s"
        f"  p50 {ms['only'][0]:6.2f} ms  p99 {ms['only'][1]:6.2f} ms"
    )
    unexpected = {k: v for k, v in (hot + many + sold).items() if k not in ("ok", "sold_out")}
    if unexpected or errors:
        print(f"  unexpected answers {dict(unexpected)} connection errors {dict(errors)}")
    expected = hot["ok"] + many["ok"] + 1  # +1: the sold-out envelope's, in the setup
    ok = check["grabbed"] == expected and check["pairs"] == check["grabbed"] and not check["over"]
    print(
        f"  database: {check['grabbed']:,} shares grabbed (answers said {expected:,}), "
        f"{check['pairs']:,} distinct (envelope, person), {check['over']} over-grabbed envelopes"
        f" → {'OK' if ok else 'MISMATCH'}"
    )
    for name, goal in GOALS.items():
        if name not in rates or (name == "grabs/s across many" and not many):
            continue
        verdict = "meets" if rates[name] >= goal else "misses"
        print(f"  goal {name} ≥ {goal:,.0f}: {verdict} ({rates[name]:,.0f})")
    return ok and not unexpected and not errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=256, help="customers/connections (256)")
    p.add_argument("--processes", type=int, default=4, help="client processes (4)")
    p.add_argument("--envelopes", type=int, default=200, help="hot envelopes (200)")
    p.add_argument(
        "--many-envelopes", type=int, default=256, help="envelopes of the many phase (256)"
    )
    p.add_argument(
        "--many-grabs",
        type=int,
        default=95,
        help="grabs per client in the many phase (95, at most the shares; 0: skip)",
    )
    p.add_argument("--seconds", type=float, default=10, help="sold-out phase length (10)")
    p.add_argument("--workers", type=int, default=2, help="app processes (2)")
    p.add_argument("--databases", default="postgresql", help="postgresql and/or sqlite")
    p.add_argument(
        "--postgres-url", default="postgresql+psycopg://127.0.0.1:5432/test", help="server"
    )
    p.add_argument("--schema", default="bench_red_envelope", help="PostgreSQL schema")
    return p.parse_args(argv)


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    good = True
    for name in (d.strip() for d in args.databases.split(",") if d.strip()):
        with tempfile.TemporaryDirectory(prefix="covernet-bench-") as tmp:
            url = args.postgres_url if name == "postgresql" else None
            good = bench(args, url, Path(tmp)) and good
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
