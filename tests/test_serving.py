"""``covernet serve --workers N``: every worker listens on a socket of its own, keep-alive
connections are spread over the workers, a dead worker is replaced, SIGTERM stops them
all, and a port held by another program fails at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from covernet import serving
from tests.conftest import _free_port

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not serving.reuse_port_supported(), reason="one socket per worker needs Linux SO_REUSEPORT"
)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _socket_owners(pids: list[int]) -> dict[int, int]:
    """socket inode -> the pid holding it, for the given processes."""
    owners = {}
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            links = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:
            continue
        for link in links:
            if link.startswith("socket:["):
                owners[int(link[8:-1])] = pid
    return owners


def _tcp_sockets(port: int) -> list[tuple[str, int]]:
    """(state, inode) of every IPv4 TCP socket whose local port is ``port``."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rpartition(":")[2], 16) == port:
            rows.append((fields[3], int(fields[9])))
    return rows


LISTEN, ESTABLISHED = "0A", "01"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    env = {
        **os.environ,
        "COVERNET_DATABASE_URL": f"sqlite:///{tmp_path}/serve.db",
        "COVERNET_ENV": "test",
        "COVERNET_LOG_LEVEL": "warning",
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "covernet.cli", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "covernet.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not (
        len(_children(proc.pid)) >= 2
        and sum(state == LISTEN for state, _ in _tcp_sockets(port)) == 2
        and _healthy(port)
    ):
        assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.2)
    yield proc, port
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _workers(proc: subprocess.Popen[bytes], port: int) -> list[int]:
    """The worker processes that hold a listening socket on ``port``."""
    children = _children(proc.pid)
    owners = _socket_owners(children)
    return sorted({owners[i] for state, i in _tcp_sockets(port) if state == LISTEN and i in owners})


def test_each_worker_listens_and_keep_alive_connections_are_spread(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = server
    workers = _workers(proc, port)
    assert len(workers) == 2  # two sockets, one in each worker (not one shared socket)
    connections = []
    for _ in range(24):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        connections.append(sock)  # kept open: keep-alive
    try:
        owners = _socket_owners(workers)
        served = Counter(
            owners[i] for state, i in _tcp_sockets(port) if state == ESTABLISHED and i in owners
        )
        assert sum(served.values()) == 24
        # Spread by the kernel's hash over the two sockets: both take a share (all 24 on
        # one worker has a chance of 2 in 16 million).
        assert len(served) == 2, served
    finally:
        for sock in connections:
            sock.close()


def test_a_dead_worker_is_replaced_and_sigterm_stops_the_server(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = server
    first, second = _workers(proc, port)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        now = _workers(proc, port)
        if len(now) == 2 and first not in now and _healthy(port):
            break
        assert proc.poll() is None, "the server stopped instead of replacing its worker"
        assert time.monotonic() < deadline, f"no replacement for worker {first}: {now}"
        time.sleep(0.2)
    assert second in now
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0
    assert not [pid for pid in now if Path(f"/proc/{pid}").exists()]
    assert not _tcp_sockets(port) or all(state != LISTEN for state, _ in _tcp_sockets(port))


def test_a_port_held_by_another_program_fails_at_once(tmp_path: Path) -> None:
    port = _free_port()
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        done = subprocess.run(
            [sys.executable, "-m", "covernet.cli", "serve", "--port", str(port), "--workers", "2"],
            env={**os.environ, "COVERNET_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == serving.STARTUP_FAILURE
    assert f"cannot listen on 127.0.0.1:{port}" in done.stdout


def test_workers_stop_when_their_supervisor_is_killed(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = server
    workers = _workers(proc, port)
    assert len(workers) == 2
    proc.kill()  # SIGKILL: the supervisor cannot pass anything on
    proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, "orphaned workers kept running"
        time.sleep(0.2)
    assert all(state != LISTEN for state, _ in _tcp_sockets(port))
