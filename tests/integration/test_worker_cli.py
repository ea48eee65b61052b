"""``covernet worker --once`` as an operator runs it: a separate process delivers the
outbox over real HTTP to an insurer's webhook, signed with the insurer's secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from covernet.integration import outbox
from covernet.integration.models import OutboxRow

ROOT = Path(__file__).resolve().parents[2]
SECRET = "insurer-shared-secret-for-the-test"


class Insurer(ThreadingHTTPServer):
    received: list[dict[str, Any]]
    fail: bool


class Handler(BaseHTTPRequestHandler):
    server: Insurer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        timestamp = self.headers["X-Covernet-Timestamp"]
        expected = hmac.new(
            SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        ok = hmac.compare_digest(expected, self.headers["X-Covernet-Signature"])
        event = json.loads(body)
        ok = ok and event["event_id"] == self.headers["X-Covernet-Event-Id"]
        self.server.received.append({"ok": ok, "path": self.path, "event": event})
        self.send_response(202 if ok and not self.server.fail else 500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def insurer() -> Iterator[Insurer]:
    server = Insurer(("127.0.0.1", 0), Handler)
    server.received, server.fail = [], False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "covernet.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_worker_once_delivers_over_http(tmp_path: Path, insurer: Insurer) -> None:
    url = f"sqlite:///{tmp_path}/worker.db"
    port = insurer.server_address[1]
    endpoints = {"anxin-pc": {"url": f"http://127.0.0.1:{port}/covernet/events", "secret": SECRET}}
    env = {
        **os.environ,
        "COVERNET_DATABASE_URL": url,
        "COVERNET_ENV": "test",
        "COVERNET_INSURER_ENDPOINTS": json.dumps(endpoints),
        "COLUMNS": "200",
    }
    assert run(["migrate"], env).returncode == 0
    engine = create_engine(url)
    with Session(engine) as db, db.begin():
        ids = [
            outbox.enqueue(
                db,
                topic,
                insurer_code=insurer_code,
                subject_id="p1",
                payload={"policy_no": "CN20261201-ABCDEFGH"},
            ).id
            for topic, insurer_code in (
                ("policy.issued", "anxin-pc"),
                ("policy.surrendered", "anxin-pc"),
                ("policy.issued", "changsheng-life"),  # no endpoint configured for it
            )
        ]
    done = run(["worker", "--once", "--name", "cli-test"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 delivered" in done.stdout and "cli-test" in done.stdout
    assert [r["ok"] for r in insurer.received] == [True, True]
    assert {r["path"] for r in insurer.received} == {"/covernet/events"}
    assert [r["event"]["event_id"] for r in insurer.received] == ids[:2]
    with Session(engine) as db:
        rows = {r.id: r for r in db.scalars(select(OutboxRow))}
    assert [rows[i].status for i in ids] == ["delivered", "delivered", "pending"]
    assert rows[ids[2]].attempts == 1 and "no endpoint" in (rows[ids[2]].last_error or "")
    again = run(["worker", "--once"], env)  # nothing due: the retry waits for its backoff
    assert again.returncode == 0 and "0 delivered" in again.stdout
    assert len(insurer.received) == 2
    engine.dispose()


def test_worker_stops_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/worker.db"
    env = {**os.environ, "COVERNET_DATABASE_URL": url, "COVERNET_ENV": "test", "COLUMNS": "200"}
    assert run(["migrate"], env).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "covernet.cli", "worker", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    assert "delivering the outbox" in proc.stdout.readline()
    proc.terminate()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped; 0 delivered" in out
