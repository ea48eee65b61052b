"""The advisor license registry (R1): compliance maintains it; every licensed action asks
it; expired, suspended, revoked and out-of-scope licenses are refused at once."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from covernet.audit.models import AuditEntry
from covernet.catalog.spec import Line
from covernet.compliance import licenses
from covernet.compliance.models import AdvisorLicense
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.identity import service as identity
from covernet.identity.models import Role
from tests.conftest import add_staff


def _staff(db_url: str, username: str, role: Role) -> tuple[str, str]:
    return add_staff(db_url, username, role, name=username)


def _headers(client: Any, username: str, secret: str) -> dict[str, str]:
    response = client.post(
        "/api/v1/auth/login",
        json={
            "username": username,
            "password": "staff-pass-1",
            "totp": identity.current_totp(secret),
        },
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def officer(client: Any, db_url: str) -> dict[str, str]:
    _, secret = _staff(db_url, "cass", Role.compliance)
    return _headers(client, "cass", secret)


def _license(**change: Any) -> dict[str, Any]:
    body = {
        "license_no": "02000111000080002024000123",
        "advisor_username": "ada",
        "institution": "示例安心财产保险股份有限公司（演示）",
        "valid_until": (clock.today() + timedelta(days=200)).isoformat(),
        "lines": ["accident", "medical"],
        "grade": "A",
    }
    body.update(change)
    return body


def test_register_check_and_refuse(client: Any, db_url: str, officer: dict[str, str]) -> None:
    advisor_id, _ = _staff(db_url, "ada", Role.advisor)
    made = client.post("/api/v1/compliance/licenses", json=_license(), headers=officer)
    assert made.status_code == 201, made.text
    assert made.json()["effective_status"] == "active"
    with unit_of_work(db_url) as db:
        assert licenses.require_license(db, advisor_id, Line.accident)
        with pytest.raises(licenses.LicenseRefused) as refused:
            licenses.require_license(db, advisor_id, Line.life)
        assert refused.value.code == "license_out_of_scope"
    # Expiry takes effect the day after valid_until, with no job having to run.
    with clock.shifted(timedelta(days=201)), unit_of_work(db_url) as db:
        with pytest.raises(licenses.LicenseRefused) as expired:
            licenses.require_license(db, advisor_id, Line.accident)
        assert expired.value.code == "license_expired"
    suspended = client.post(
        f"/api/v1/compliance/licenses/{made.json()['id']}/status",
        json={"status": "suspended", "reason": "投诉调查中"},
        headers=officer,
    )
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    with unit_of_work(db_url) as db:
        with pytest.raises(licenses.LicenseRefused) as stopped:
            licenses.require_license(db, advisor_id)
        assert stopped.value.code == "license_suspended"
        actions = db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)).all()
        assert "license.register" in actions and "license.status" in actions


def test_unlicensed_and_bad_input(client: Any, db_url: str, officer: dict[str, str]) -> None:
    advisor_id, _ = _staff(db_url, "ada", Role.advisor)
    with unit_of_work(db_url) as db, pytest.raises(licenses.LicenseRefused) as none:
        licenses.require_license(db, advisor_id)
    assert none.value.code == "unlicensed"
    bad_no = client.post(
        "/api/v1/compliance/licenses", json=_license(license_no="12-3"), headers=officer
    )
    assert bad_no.status_code == 422 and "license_no" in bad_no.json()["message"]
    not_advisor = client.post(
        "/api/v1/compliance/licenses", json=_license(advisor_username="cass"), headers=officer
    )
    assert not_advisor.status_code == 400 and not_advisor.json()["error"] == "unknown_advisor"
    assert (
        client.post("/api/v1/compliance/licenses", json=_license(), headers=officer).status_code
        == 201
    )
    twice = client.post("/api/v1/compliance/licenses", json=_license(), headers=officer)
    assert twice.status_code == 409 and twice.json()["error"] == "license_exists"


def test_only_compliance_maintains_licenses(client: Any, db_url: str) -> None:
    _, secret = _staff(db_url, "ada", Role.advisor)
    advisor = _headers(client, "ada", secret)
    response = client.post("/api/v1/compliance/licenses", json=_license(), headers=advisor)
    assert response.status_code == 403
    mine = client.get("/api/v1/me/license", headers=advisor)
    assert mine.status_code == 404 and mine.json()["error"] == "unlicensed"


def test_revoked_stays_revoked_and_a_reason_is_required(
    client: Any, db_url: str, officer: dict[str, str]
) -> None:
    _staff(db_url, "ada", Role.advisor)
    made = client.post("/api/v1/compliance/licenses", json=_license(), headers=officer).json()
    url = f"/api/v1/compliance/licenses/{made['id']}/status"
    blank = client.post(url, json={"status": "revoked", "reason": "  "}, headers=officer)
    assert blank.status_code == 400 and blank.json()["error"] == "reason_required"
    assert (
        client.post(url, json={"status": "revoked", "reason": "离职"}, headers=officer).status_code
        == 200
    )
    again = client.post(url, json={"status": "active", "reason": "复职"}, headers=officer)
    assert again.status_code == 409 and again.json()["error"] == "license_revoked"


def test_expiry_monitor_lists_the_soonest_first(
    client: Any, db_url: str, officer: dict[str, str]
) -> None:
    today = clock.today()
    for n, days in enumerate((100, 10, -3)):
        _staff(db_url, f"adv{n}", Role.advisor)
        client.post(
            "/api/v1/compliance/licenses",
            headers=officer,
            json=_license(
                license_no=f"0200011100008000202400{n:04d}",
                advisor_username=f"adv{n}",
                valid_until=(today + timedelta(days=days)).isoformat(),
            ),
        )
    soon = client.get(
        "/api/v1/compliance/licenses", params={"expiring_within": 30}, headers=officer
    ).json()
    assert [r["valid_until"] for r in soon] == [
        (today - timedelta(days=3)).isoformat(),
        (today + timedelta(days=10)).isoformat(),
    ]
    assert [r["effective_status"] for r in soon] == ["expired", "active"]


def test_csv_import_is_all_or_nothing(client: Any, db_url: str, officer: dict[str, str]) -> None:
    for name in ("ann", "bob"):
        _staff(db_url, name, Role.advisor)
    header = "license_no,advisor_username,institution,valid_until,lines,grade\n"
    good = "02000111000080002024000201,ann,示例机构,2030-01-01,accident|medical,A\n"
    bad = "02000111000080002024000202,bob,示例机构,2030-02-30,accident,B\n"
    refused = client.post(
        "/api/v1/compliance/licenses/import",
        content=(header + good + bad).encode(),
        headers={**officer, "Content-Type": "text/csv"},
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_csv"
    assert refused.json()["detail"]["problems"][0]["line"] == 3
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(AdvisorLicense)) == 0
    fixed = bad.replace("2030-02-30", "2030-02-28")
    done = client.post(
        "/api/v1/compliance/licenses/import",
        content=(header + good + fixed).encode(),
        headers={**officer, "Content-Type": "text/csv"},
    )
    assert done.status_code == 201 and done.json() == {"imported": 2}
    listed = client.get("/api/v1/compliance/licenses", headers=officer).json()
    assert {r["valid_until"] for r in listed} == {"2030-01-01", "2030-02-28"}
    assert listed[0]["lines"] == ["accident", "medical"]
    assert date.fromisoformat(listed[1]["valid_until"]) == date(2030, 2, 28)
