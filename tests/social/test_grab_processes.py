"""Red envelope grabs from many clients through two app processes on one PostgreSQL
database: no over-grab, no double grab (the social issue's acceptance test).

The in-process tests (``test_red_envelopes.py``) race threads against one app; here two
uvicorn processes serve the same envelope, so only the database can keep the count.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import CATALOG_DIR, ROOT, _free_port, _reset_caches, _truncate, run_async

SHARES = 10
CUSTOMERS = 30
SENDS = 2  # each customer sends its grab this many times at once
BUSY_RETRIES = 20


def _start(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "COVERNET_ENV": "test",
        "COVERNET_DATABASE_URL": url,
        "COVERNET_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "COVERNET_CATALOG_DIR": str(CATALOG_DIR),
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "covernet.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_healthy(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"app at {base} did not start:\n{log.read_text()}")
        time.sleep(0.1)


@pytest.fixture
def two_servers(
    postgresql_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, list[str]]]:
    """The PostgreSQL test database, emptied, and two app processes serving it."""
    monkeypatch.setenv("COVERNET_DATABASE_URL", postgresql_url)
    _reset_caches()
    _truncate(postgresql_url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        bases = []
        for n in range(2):
            port, log = _free_port(), tmp_path / f"server{n}.log"
            procs.append(_start(postgresql_url, port, log))
            bases.append(f"http://127.0.0.1:{port}")
        for proc, base, n in zip(procs, bases, range(2), strict=True):
            _wait_healthy(proc, base, tmp_path / f"server{n}.log")
        yield postgresql_url, bases
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        _reset_caches()


def _setup(url: str, shipped_catalog: Any) -> tuple[str, list[str]]:
    """Catalog, customers with bearer tokens, and an open envelope of ``SHARES`` shares."""
    from starlette.testclient import TestClient

    from covernet.app import create_app
    from covernet.catalog.service import load_into_db
    from covernet.core.db import unit_of_work
    from covernet.identity import service as identity
    from covernet.identity.access import Principal
    from covernet.identity.models import Role
    from covernet.social import service
    from covernet.social.models import RedEnvelope
    from tests.policies.buying import pay

    with unit_of_work(url) as db:
        load_into_db(db, shipped_catalog)
    with unit_of_work(url) as db:
        sender = identity.register_customer(
            db, mobile="13730009999", password="s3cret-pass", name="发红包"
        )
        tokens = []
        for n in range(CUSTOMERS):
            user = identity.register_customer(
                db, mobile=f"1373000{n:04d}", password="s3cret-pass", name=f"抢红包{n}"
            )
            tokens.append(identity.open_session(db, user, kind="bearer", user_agent="t").token)
        data = service.EnvelopeIn(
            product_code="accident-monthly", plan_code="basic", shares=SHARES, split="random"
        )
        envelope, _ = service.create(db, Principal(role=Role.customer, user_id=sender.id), data)
        envelope_id, payment_id = envelope.id, envelope.payment_id
    assert payment_id is not None
    with TestClient(create_app(), base_url="https://testserver") as client:
        pay(client, payment_id)  # the sandbox pays and its callback opens the envelope
    with unit_of_work(url) as db:
        opened = service.shares_of(db, envelope_id)
        assert len(opened) == SHARES
        now_open = db.get(RedEnvelope, envelope_id)
        assert now_open is not None and now_open.status == "open"
    return envelope_id, tokens


async def _grab_all(bases: list[str], envelope_id: str, tokens: list[str]) -> list[Any]:
    path = f"/api/v1/red-envelopes/{envelope_id}/grab"
    limits = httpx.Limits(max_connections=CUSTOMERS * SENDS)
    clients = [httpx.AsyncClient(base_url=b, timeout=30, limits=limits) for b in bases]
    try:
        # Open connections first, so the grabs themselves start close together.
        await asyncio.gather(*(c.get("/healthz") for c in clients))
        start = asyncio.Event()

        async def grab(n: int, token: str) -> tuple[int, int, dict[str, Any]]:
            await start.wait()
            for _ in range(BUSY_RETRIES):
                answer = await clients[n % 2].post(
                    path, headers={"Authorization": f"Bearer {token}"}
                )
                body = answer.json()
                # ``try_again``: every free share was locked by grabs in flight; the app
                # asks the client to retry, so it is no final answer.
                if not (answer.status_code == 409 and body.get("error") == "try_again"):
                    return n, answer.status_code, body
                await asyncio.sleep(0.05)
            return n, answer.status_code, body

        tasks = [
            asyncio.create_task(grab(n, token))
            for n, token in enumerate(tokens)
            for _ in range(SENDS)
        ]
        await asyncio.sleep(0)
        start.set()
        return list(await asyncio.gather(*tasks))
    finally:
        for c in clients:
            await c.aclose()


def test_no_over_or_double_grab_across_two_processes_postgresql(
    two_servers: tuple[str, list[str]], shipped_catalog: Any, tmp_path: Path
) -> None:
    try:
        _check(*two_servers, shipped_catalog)
    except BaseException:
        for log in sorted(tmp_path.glob("server*.log")):  # the servers' side of a failure
            sys.stderr.write(f"--- {log.name}\n{log.read_text()}\n")
        raise


def _check(url: str, bases: list[str], shipped_catalog: Any) -> None:
    from covernet.core.db import unit_of_work
    from covernet.social.models import RedEnvelopeShare as Share

    envelope_id, tokens = _setup(url, shipped_catalog)

    answers = run_async(_grab_all(bases, envelope_id, tokens))

    assert len(answers) == CUSTOMERS * SENDS
    won = [(n, body) for n, status, body in answers if status == 201]
    refused = Counter(
        body.get("error") if status == 409 else f"{status}: {body}"
        for _, status, body in answers
        if status != 201
    )
    assert len(won) == SHARES, (won, refused)
    assert set(refused) <= {"sold_out", "already_grabbed"}, refused
    per_customer = Counter(n for n, _ in won)
    assert max(per_customer.values()) == 1, per_customer
    assert len({body["grab_id"] for _, body in won}) == SHARES

    with unit_of_work(url) as db:
        grabbed = db.execute(
            select(Share.id, Share.grabbed_by).where(
                Share.envelope_id == envelope_id, Share.grabbed_by.is_not(None)
            )
        ).all()
        total = db.scalar(select(func.count()).where(Share.envelope_id == envelope_id))
    assert total == SHARES
    assert len(grabbed) == SHARES
    assert len({who for _, who in grabbed}) == SHARES
    assert {share_id for share_id, _ in grabbed} == {body["grab_id"] for _, body in won}
