"""The covernet command, run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "covernet.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "COVERNET_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
        "COVERNET_ENV": "test",
        "COLUMNS": "200",
    }


def _count(env: dict[str, str], sql: str) -> int:
    engine = create_engine(env["COVERNET_DATABASE_URL"])
    with engine.connect() as conn:
        value = conn.execute(text(sql)).scalar_one()
    engine.dispose()
    return int(value)


def test_demo_is_safe_to_run_twice_and_prints_the_logins(env: dict[str, str]) -> None:
    first = run(["demo"], env)
    assert first.returncode == 0, first.stderr
    for login in ("advisor", "claims", "compliance", "ops", "admin", "13800138000"):
        assert login in first.stdout
    assert "covernet-demo" in first.stdout and "http://127.0.0.1:8000" in first.stdout
    second = run(["demo"], env)
    assert second.returncode == 0, second.stderr
    assert _count(env, "SELECT count(*) FROM users") == 6
    assert _count(env, "SELECT count(*) FROM product_versions") == _count(
        env, "SELECT count(*) FROM products"
    )


def test_catalog_load_reports_errors_with_the_file(env: dict[str, str], tmp_path: Path) -> None:
    assert run(["migrate"], env).returncode == 0
    broken = tmp_path / "broken"
    (broken / "insurers").mkdir(parents=True)
    (broken / "products").mkdir()
    for insurer in (ROOT / "catalog" / "insurers").glob("*.yaml"):
        (broken / "insurers" / insurer.name).write_text(
            insurer.read_text(encoding="utf-8"), encoding="utf-8"
        )
    source = (ROOT / "catalog" / "products" / "accident-monthly.yaml").read_text(encoding="utf-8")
    (broken / "products" / "accident-monthly.yaml").write_text(
        source.replace("line: accident", "line: pets"), encoding="utf-8"
    )
    result = run(["catalog", "load", str(broken)], env)
    assert result.returncode == 2
    assert "accident-monthly.yaml" in result.stderr and "line" in result.stderr
    assert _count(env, "SELECT count(*) FROM products") == 0  # nothing half-written
    good = run(["catalog", "load"], env)
    assert good.returncode == 0 and "accident-monthly" in good.stdout


def test_user_add_reads_the_password_and_prints_the_totp_uri(env: dict[str, str]) -> None:
    assert run(["migrate"], env).returncode == 0
    made = run(["user", "add", "dora", "--role", "claims"], env, stdin="claims-pass-1\n")
    assert made.returncode == 0, made.stderr
    assert "otpauth://totp/Covernet:dora" in made.stdout
    weak = run(["user", "add", "eve", "--role", "claims"], env, stdin="short\n")
    assert weak.returncode == 2 and "weak_password" in weak.stderr
    bad_role = run(["user", "add", "fred", "--role", "pirate"], env, stdin="claims-pass-1\n")
    assert bad_role.returncode == 2 and "invalid_role" in bad_role.stderr
    code = run(["user", "totp", "dora"], env)
    assert code.returncode == 0 and code.stdout.strip().isdigit()
