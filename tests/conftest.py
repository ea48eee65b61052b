"""Test harness: real databases (SQLite always, PostgreSQL when reachable), the app over
HTTP(S) in-process, and a live uvicorn server for browser tests.

Database tests are parametrised over ``sqlite`` and ``postgresql``.  PostgreSQL is
skipped when it cannot be reached, except on CI (``CI`` or ``COVERNET_REQUIRE_POSTGRES``
set), where that is a failure, and a run in which no PostgreSQL test passed fails too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
CATALOG_DIR = ROOT / "catalog"
PG_URL = os.environ.get("COVERNET_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
REQUIRE_PG = bool(os.environ.get("CI") or os.environ.get("COVERNET_REQUIRE_POSTGRES"))

# Every test runs in the test environment with fast password hashing.
os.environ["COVERNET_ENV"] = "test"
os.environ.setdefault("COVERNET_CATALOG_DIR", str(CATALOG_DIR))
os.environ["COVERNET_STAFF_MFA"] = "required"
os.environ["COVERNET_COOKIE_SECURE"] = "true"
os.environ["COVERNET_CATALOG_CACHE_SECONDS"] = "0"
# Uploaded files go to a folder of the test run, never into the project's var/.
os.environ.setdefault("COVERNET_STORAGE_DIR", tempfile.mkdtemp(prefix="covernet-uploads-"))

# Property tests judge results, not speed: a loaded CI machine must not fail them.
hypothesis_settings.register_profile("covernet", deadline=None, print_blob=True)
hypothesis_settings.load_profile("covernet")

_pg_passed = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _pg_passed
    if report.when == "call" and report.passed and "postgresql" in report.nodeid:
        _pg_passed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # only the controller judges the whole run
    if REQUIRE_PG and _pg_passed == 0 and exitstatus == 0:
        sys.stderr.write("\nFAILED: PostgreSQL is required here but no PostgreSQL test passed\n")
        session.exitstatus = 1


def _reset_caches() -> None:
    from covernet.catalog.service import forget_snapshots
    from covernet.core.batch import forget_committers
    from covernet.core.config import reset_settings
    from covernet.core.crypto import reset_crypto
    from covernet.core.db import dispose_engines

    reset_settings()
    reset_crypto()
    forget_snapshots()
    forget_committers()
    dispose_engines()


def _truncate(url: str) -> None:
    from covernet.core.db import get_engine
    from covernet.models import Base

    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    engine = get_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - our own table names
    from covernet.audit.service import seed_head
    from covernet.core.db import unit_of_work

    with unit_of_work(url) as db:
        seed_head(db)  # as the migration does


@pytest.fixture(scope="session")
def worker_tag(request: pytest.FixtureRequest) -> str:
    workerinput = getattr(request.config, "workerinput", None)
    return workerinput["workerid"] if workerinput else "main"


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from covernet.core.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'covernet.db'}"
    upgrade(url)
    return url


def _pg_reachable() -> bool:
    parsed = make_url(PG_URL)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), 2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgresql_url(worker_tag: str) -> str:
    if not _pg_reachable():
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required on CI but {PG_URL} is unreachable")
        pytest.skip("PostgreSQL is not reachable")
    from covernet.core.migrate import upgrade

    # COVERNET_TEST_TAG keeps two test runs on one server apart.
    schema = f"covernet_test_{os.environ.get('COVERNET_TEST_TAG', '')}{worker_tag}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    upgrade(rendered)
    return rendered


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated, empty database of each kind, made the app's database for the test."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    monkeypatch.setenv("COVERNET_DATABASE_URL", url)
    _reset_caches()
    _truncate(url)
    yield url
    _reset_caches()


@pytest.fixture(scope="session")
def shipped_catalog() -> Any:
    from covernet.catalog.loader import load_catalog

    return load_catalog(CATALOG_DIR)


@pytest.fixture
def db(db_url: str) -> Iterator[Any]:
    """A unit of work on the test database (committed at the end of the test)."""
    from covernet.core.db import unit_of_work

    with unit_of_work(db_url) as session:
        yield session


@pytest.fixture
def loaded_catalog(db_url: str, shipped_catalog: Any) -> Any:
    from covernet.catalog.service import load_into_db
    from covernet.core.db import unit_of_work

    with unit_of_work(db_url) as session:
        load_into_db(session, shipped_catalog)
    return shipped_catalog


@pytest.fixture
def app(db_url: str, loaded_catalog: Any) -> Any:
    from covernet.app import create_app

    return create_app()


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    from starlette.testclient import TestClient

    with TestClient(app, base_url="https://testserver") as test_client:
        yield test_client


@pytest.fixture
def anon_client(app: Any) -> Iterator[Any]:
    """A second, independent browser/API client on the same app."""
    from starlette.testclient import TestClient

    with TestClient(app, base_url="https://testserver") as test_client:
        yield test_client


CUSTOMER = {"mobile": "13912345678", "password": "s3cret-pass", "name": "测试客户"}


@pytest.fixture
def customer(db_url: str) -> dict[str, str]:
    """A registered customer's credentials (and id)."""
    from covernet.core.db import unit_of_work
    from covernet.identity import service

    with unit_of_work(db_url) as session:
        user = service.register_customer(session, **CUSTOMER)
        return {**CUSTOMER, "id": user.id}


def bearer(client: Any, mobile: str, password: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"mobile": mobile, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def add_staff(db_url: str, username: str, role: Any, name: str = "王小明") -> tuple[str, str]:
    """A staff account (password ``staff-pass-1``); returns its id and TOTP secret."""
    from covernet.core.db import unit_of_work
    from covernet.identity import service

    with unit_of_work(db_url) as db:
        made = service.add_staff(
            db, username=username, role=role, password="staff-pass-1", name=name
        )
        return made.user.id, made.totp_secret


def staff_headers(client: Any, db_url: str, username: str, role: Any) -> dict[str, str]:
    """A new staff account signed in over the API with password and TOTP."""
    from covernet.identity import service

    _, secret = add_staff(db_url, username, role)
    response = client.post(
        "/api/v1/auth/login",
        json={
            "username": username,
            "password": "staff-pass-1",
            "totp": service.current_totp(secret),
        },
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def sign_in_with_cookie(client: Any, db_url: str, user_id: str) -> str:
    """Give ``client`` a browser session cookie for the user; return its CSRF token."""
    from covernet.core.db import unit_of_work
    from covernet.identity import service
    from covernet.identity.access import SESSION_COOKIE
    from covernet.identity.models import User

    with unit_of_work(db_url) as db:
        user = db.get(User, user_id)
        assert user is not None
        issued = service.open_session(db, user, kind="cookie", user_agent="test")
        csrf = issued.session.csrf_token
    assert csrf
    client.cookies.set(SESSION_COOKIE, issued.token)
    return csrf


@pytest.fixture
def customer_headers(client: Any, customer: dict[str, str]) -> dict[str, str]:
    return bearer(client, customer["mobile"], customer["password"])


# A live server for browser tests --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """uvicorn serving the app on SQLite with the demo catalog and demo accounts."""
    workdir = tmp_path_factory.mktemp("live")
    port = _free_port()
    env = {
        **os.environ,
        # Like the demo: the sandbox's pay URLs and callbacks point at this server, and
        # the server delivers the callbacks itself (it does not under COVERNET_ENV=test).
        "COVERNET_ENV": "development",
        "COVERNET_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "COVERNET_DATABASE_URL": f"sqlite:///{workdir / 'live.db'}",
        "COVERNET_COOKIE_SECURE": "false",
        "COVERNET_STAFF_MFA": "optional",
        "COVERNET_CATALOG_DIR": str(CATALOG_DIR),
        "COVERNET_CATALOG_CACHE_SECONDS": "2",
    }
    setup = subprocess.run(
        [sys.executable, "-m", "covernet.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    log = (workdir / "server.log").open("w")
    proc = subprocess.Popen(
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
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError((workdir / "server.log").read_text())
        time.sleep(0.1)
    yield base
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


# One Chromium for every test that drives a browser ----------------------------------------

CHROMIUM = Path(os.environ.get("COVERNET_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Playwright's sync API runs one event loop per process: every browser test in a
    test process shares this one launch (a second ``sync_playwright()`` would fail)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need Chromium at {CHROMIUM} on CI")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


def run_async(coro: Any) -> Any:
    """Run a coroutine to completion on an event loop of its own thread.

    Playwright's sync API (the session's ``browser``) keeps an event loop running in the
    test process's main thread, where ``asyncio.run`` would then refuse to start."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
