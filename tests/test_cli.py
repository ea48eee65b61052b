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
    assert _count(env, "SELECT count(*) FROM advisor_licenses") == 1
    # The demo customer's policy went through the real flow once: paid, underwritten,
    # issued, in force since before today (so a claim can be tried at once).
    assert "demo policy of 13800138000: CN" in first.stdout
    assert "demo policy" not in second.stdout
    assert _count(env, "SELECT count(*) FROM policies WHERE status = 'in_force'") == 1
    assert _count(env, "SELECT count(*) FROM ledger_entries WHERE amount_fen > 0") == 1
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
    reset = run(["user", "reset-totp", "dora"], env)
    assert reset.returncode == 0 and "otpauth://totp/Covernet:dora" in reset.stdout
    new_secret = reset.stdout.split("secret=")[1].split("&")[0]
    assert new_secret not in made.stdout
    assert run(["user", "reset-totp", "nobody"], env).returncode == 2
    actions = _count(
        env,
        "SELECT COUNT(*) FROM audit_entries WHERE action IN ('user.totp_shown', 'user.mfa_reset')",
    )
    assert actions == 2


def test_demo_refuses_the_public_password_in_production(env: dict[str, str]) -> None:
    from covernet.core.crypto import new_key_entry

    production = {
        **env,
        "COVERNET_ENV": "production",
        "COVERNET_SECRET_KEY": "a-real-secret-key-for-this-test-0123456789",
        "COVERNET_FIELD_KEYS": new_key_entry("k1"),
        "COVERNET_BLIND_INDEX_KEY": "a-real-blind-index-key-0123456789abcdef",
    }
    result = run(["demo"], production)
    assert result.returncode == 2 and "demo_in_production" in result.stderr


def test_key_rotation_reencrypts_everything_under_the_new_key(env: dict[str, str]) -> None:
    from covernet.core.crypto import FieldCipher, new_key_entry, parse_keyring

    old = "dev1:ZGV2LW9ubHktZmllbGQta2V5LTAwMDAwMDAwMDAwMDA="
    assert run(["demo"], {**env, "COVERNET_FIELD_KEYS": old}).returncode == 0
    rotated_env = {**env, "COVERNET_FIELD_KEYS": f"{new_key_entry('k2')},{old}"}
    result = run(["key", "rotate"], rotated_env)
    assert result.returncode == 0, result.stderr
    # 6 mobiles or TOTP secrets; the demo policy's quote (1) and application (applicant
    # and insured names and ID numbers, health answers: 5)
    assert "re-encrypted 12 values" in result.stdout
    new_only = FieldCipher(parse_keyring(rotated_env["COVERNET_FIELD_KEYS"])[:1])
    engine = create_engine(env["COVERNET_DATABASE_URL"])
    with engine.connect() as conn:
        mobile = conn.execute(text("SELECT mobile_enc FROM users WHERE role='customer'")).scalar()
        insured = conn.execute(text("SELECT insured_id_enc FROM applications")).scalar()
    engine.dispose()
    assert new_only.decrypt(mobile, context="user.mobile") == "13800138000"
    assert new_only.decrypt(insured, context="application.id_number").startswith("310104")
    # The old key can go: the demo logins still work with only the new key.
    assert (
        run(
            ["user", "totp", "admin"],
            {**env, "COVERNET_FIELD_KEYS": rotated_env["COVERNET_FIELD_KEYS"].split(",")[0]},
        ).returncode
        == 0
    )
    again = run(["key", "rotate"], rotated_env)
    assert "re-encrypted 0 values" in again.stdout


def test_jobs_run_once_and_report(env: dict[str, str]) -> None:
    assert run(["migrate"], env).returncode == 0
    done = run(["jobs"], env)
    assert done.returncode == 0, done.stderr
    assert "expire_payments: 0" in done.stdout and "expire_policies: 0" in done.stdout
