"""The compliance console's audit page."""

from __future__ import annotations

from typing import Any

from covernet.audit import service as audit
from covernet.core.db import unit_of_work
from covernet.identity.models import Role, User
from tests.conftest import add_staff, sign_in_with_cookie

HTML = {"accept": "text/html"}


def _staff(db_url: str, username: str, role: Role) -> str:
    return add_staff(db_url, username, role, name=username)[0]


def test_signed_out_visitors_are_sent_to_the_staff_login(client: Any) -> None:
    response = client.get("/console/audit", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?as=staff&next=/console/audit"


def test_only_compliance_and_admins_see_the_log(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    sign_in_with_cookie(client, db_url, customer["id"])
    assert client.get("/console/audit", headers=HTML).status_code == 403
    sign_in_with_cookie(client, db_url, _staff(db_url, "ollie", Role.ops))
    assert client.get("/console/audit", headers=HTML).status_code == 403


def test_compliance_filters_pages_and_exports(client: Any, db_url: str) -> None:
    officer = _staff(db_url, "cleo", Role.compliance)
    with unit_of_work(db_url) as db:
        for n in range(60):
            audit.record(db, "test.bulk", subject_type="thing", subject_id=f"t{n}", detail={"n": n})
    sign_in_with_cookie(client, db_url, officer)
    page = client.get("/console/audit", params={"action": "test.bulk"}, headers=HTML)
    assert page.status_code == 200
    assert "共 60 条" in page.text and "t59" in page.text and "t9<" not in page.text
    assert "较早" in page.text and "action=test.bulk&amp;page=2" in page.text
    second = client.get("/console/audit", params={"action": "test.bulk", "page": 2}, headers=HTML)
    assert "t9<" in second.text and "较新" in second.text
    assert "/api/v1/audit/export.csv?action=test.bulk" in page.text
    english = client.get("/console/audit", params={"lang": "en", "subject_id": "t3"}, headers=HTML)
    assert "1 entries" in english.text and "test.bulk" in english.text
    with unit_of_work(db_url) as db:
        user = db.get(User, officer)
        assert user is not None and user.role == "compliance"
