"""Teams of advisors and their supervisors: made by ops/admin over the API and the
console; supervisors_of, team_members and is_supervisor; on SQLite and PostgreSQL.

The staff helpers here are shared by the other CRM tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.crm import teams
from covernet.identity import service as identity
from covernet.identity.models import Role
from tests.conftest import add_staff, sign_in_with_cookie

LICENSE_NOS = iter(f"0200011100008000202400{n:04d}" for n in range(1000, 9999))


def staff(
    client: Any, db_url: str, username: str, role: Role, name: str = "王小明"
) -> tuple[str, dict[str, str]]:
    """A staff account signed in over the API: (user id, bearer headers)."""
    user_id, secret = add_staff(db_url, username, role, name=name)
    response = client.post(
        "/api/v1/auth/login",
        json={
            "username": username,
            "password": "staff-pass-1",
            "totp": identity.current_totp(secret),
        },
    )
    assert response.status_code == 200, response.text
    return user_id, {"Authorization": f"Bearer {response.json()['access_token']}"}


def license_for(client: Any, officer: dict[str, str], username: str, lines: list[str]) -> None:
    held = client.post(
        "/api/v1/compliance/licenses",
        headers=officer,
        json={
            "license_no": next(LICENSE_NOS),
            "advisor_username": username,
            "institution": "示例安心财产保险股份有限公司（演示）",
            "valid_until": (clock.today() + timedelta(days=100)).isoformat(),
            "lines": lines,
        },
    )
    assert held.status_code == 201, held.text


def make_team(
    client: Any, ops: dict[str, str], code: str, members: dict[str, bool]
) -> dict[str, Any]:
    made = client.post("/api/v1/teams", headers=ops, json={"code": code, "name": f"{code} 团队"})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    for username, sup in members.items():
        done = client.put(
            f"/api/v1/teams/{code}/members",
            headers=ops,
            json={"username": username, "is_supervisor": sup},
        )
        assert done.status_code == 200, done.text
        body = done.json()
    return body


def test_teams_and_supervisors(client: Any, db_url: str) -> None:
    _, ops = staff(client, db_url, "ops1", Role.ops)
    a, advisor = staff(client, db_url, "adv-a", Role.advisor, "顾问甲")
    b, _ = staff(client, db_url, "adv-b", Role.advisor, "顾问乙")
    s, _ = staff(client, db_url, "sup-s", Role.advisor, "主管丙")
    lone, _ = staff(client, db_url, "adv-lone", Role.advisor)
    add_staff(db_url, "handler", Role.claims)
    team = make_team(client, ops, "east-1", {"adv-a": False, "adv-b": False, "sup-s": True})
    assert team["members"][0]["username"] == "sup-s"  # supervisors first
    assert {m["user_id"] for m in team["members"]} == {a, b, s}
    with unit_of_work(db_url) as db:
        assert teams.supervisors_of(db, a) == [s] and teams.supervisors_of(db, b) == [s]
        assert teams.supervisors_of(db, s) == []  # never oneself
        assert teams.team_members(db, s) == {a, b, s}
        assert teams.team_members(db, a) == set()  # a plain member supervises nobody
        assert teams.is_supervisor(db, s) and not teams.is_supervisor(db, a)
        assert teams.supervisors_of(db, lone) == [] and not teams.is_supervisor(db, lone)
    # Changing a member's role is the same call; it does not duplicate them.
    again = client.put(
        "/api/v1/teams/east-1/members",
        headers=ops,
        json={"username": "adv-a", "is_supervisor": True},
    )
    assert sorted(m["username"] for m in again.json()["members"] if m["is_supervisor"]) == [
        "adv-a",
        "sup-s",
    ]
    assert len(again.json()["members"]) == 3
    with unit_of_work(db_url) as db:
        assert teams.supervisors_of(db, b) == sorted([a, s])
    # Removing
    gone = client.delete(f"/api/v1/teams/east-1/members/{b}", headers=ops)
    assert gone.status_code == 204
    with unit_of_work(db_url) as db:
        assert teams.supervisors_of(db, b) == [] and b not in teams.team_members(db, s)
    assert client.delete(f"/api/v1/teams/east-1/members/{b}", headers=ops).json()["error"] == (
        "member_not_found"
    )
    # Refusals name the problem
    dup = client.post("/api/v1/teams", headers=ops, json={"code": "east-1", "name": "重复"})
    assert dup.status_code == 409 and dup.json()["error"] == "team_exists"
    bad = client.post("/api/v1/teams", headers=ops, json={"code": "东区", "name": "x"})
    assert bad.status_code == 422
    claims = client.put("/api/v1/teams/east-1/members", headers=ops, json={"username": "handler"})
    assert claims.status_code == 400 and claims.json()["error"] == "not_an_advisor"
    nobody = client.put("/api/v1/teams/east-1/members", headers=ops, json={"username": "nobody"})
    assert nobody.status_code == 404 and nobody.json()["error"] == "advisor_not_found"
    missing = client.put("/api/v1/teams/west/members", headers=ops, json={"username": "adv-a"})
    assert missing.status_code == 404 and missing.json()["error"] == "team_not_found"
    # Advisors do not manage teams
    assert client.get("/api/v1/teams", headers=advisor).status_code == 403
    assert (
        client.post("/api/v1/teams", headers=advisor, json={"code": "x1", "name": "x"}).status_code
        == 403
    )


def test_teams_console(client: Any, db_url: str) -> None:
    ops_id, _ = add_staff(db_url, "ops2", Role.ops)
    add_staff(db_url, "adv-c", Role.advisor, name="顾问丁")
    csrf = sign_in_with_cookie(client, db_url, ops_id)
    page = client.get("/console/teams")
    assert page.status_code == 200 and "顾问团队" in page.text
    made = client.post(
        "/console/teams",
        data={"csrf_token": csrf, "code": "north", "name": "北区"},
        follow_redirects=False,
    )
    assert made.status_code == 303
    added = client.post(
        "/console/teams/north/members",
        data={"csrf_token": csrf, "username": "adv-c", "is_supervisor": "on"},
    )
    assert added.status_code == 200 and "顾问丁" in added.text and "主管" in added.text
    wrong = client.post(
        "/console/teams", data={"csrf_token": csrf, "code": "north", "name": "再来"}
    )
    assert wrong.status_code == 409 and "已有同样代码的团队" in wrong.text
    english = client.get("/console/teams?lang=en")
    assert "Advisor teams" in english.text
    # Without the CSRF token nothing is written
    forged = client.post("/console/teams", data={"code": "south", "name": "南区"})
    assert forged.status_code == 403
    with unit_of_work(db_url) as db:
        assert [t.team.code for t in teams.teams(db)] == ["north"]
