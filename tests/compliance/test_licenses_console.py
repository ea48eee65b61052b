"""The compliance console's license page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from covernet.core import clock
from covernet.identity.models import Role
from tests.conftest import add_staff, sign_in_with_cookie

HTML = {"accept": "text/html"}


def _staff(db_url: str, username: str, role: Role) -> str:
    return add_staff(db_url, username, role, name=username)[0]


def test_register_change_and_filter_from_the_console(client: Any, db_url: str) -> None:
    _staff(db_url, "ada", Role.advisor)
    csrf = sign_in_with_cookie(client, db_url, _staff(db_url, "cass", Role.compliance))
    soon = (clock.today() + timedelta(days=10)).isoformat()
    form = {
        "csrf_token": csrf,
        "license_no": "02000111000080002024000777",
        "advisor_username": "ada",
        "institution": "示例机构",
        "valid_until": soon,
        "lines": ["accident", "medical"],
        "grade": "A",
    }
    refused = client.post("/console/licenses", data={**form, "csrf_token": "wrong"}, headers=HTML)
    assert refused.status_code == 403
    made = client.post("/console/licenses", data=form, headers=HTML)
    assert made.status_code == 200 and "已登记执业证 02000111000080002024000777" in made.text
    assert "即将到期" in made.text and "意外" in made.text
    again = client.post("/console/licenses", data=form, headers=HTML)
    assert again.status_code == 409 and 'role="alert"' in again.text
    bad = client.post(
        "/console/licenses", data={**form, "license_no": "x", "lines": []}, headers=HTML
    )
    assert bad.status_code == 422 and "license_no" in bad.text
    listing = client.get("/console/licenses?expiring=true", headers=HTML)
    assert "02000111000080002024000777" in listing.text
    license_id = listing.text.split("/console/licenses/")[1].split("/status")[0]
    changed = client.post(
        f"/console/licenses/{license_id}/status",
        headers=HTML,
        data={"csrf_token": csrf, "status": "suspended", "reason": "调查中"},
    )
    assert changed.status_code == 200 and "暂停" in changed.text


def test_the_console_is_for_compliance(client: Any, db_url: str) -> None:
    response = client.get("/console/licenses", headers=HTML, follow_redirects=False)
    assert response.status_code == 303 and "as=staff" in response.headers["location"]
    sign_in_with_cookie(client, db_url, _staff(db_url, "adv", Role.advisor))
    assert client.get("/console/licenses", headers=HTML).status_code == 403
