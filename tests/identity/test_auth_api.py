"""Registration, sign-in, sessions, throttling, staff TOTP and API keys over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from covernet.audit.models import AuditEntry
from covernet.core import clock
from covernet.core.config import reset_settings
from covernet.core.db import unit_of_work
from covernet.core.errors import CovernetError
from covernet.identity import service
from covernet.identity.models import Role, User
from tests.conftest import bearer, sign_in_with_cookie, staff_headers


def test_register_then_login_and_read_me(client: Any) -> None:
    created = client.post(
        "/api/v1/auth/register",
        json={"mobile": "+86 139-0000-1111", "password": "abc12345", "name": "李四"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["mobile"] == "139****1111" and body["role"] == "customer"
    headers = bearer(client, "13900001111", "abc12345")
    me = client.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["id"] == body["id"] and me.json()["name"] == "李四"


def test_mobile_is_stored_encrypted_with_a_blind_index(client: Any, db_url: str) -> None:
    client.post(
        "/api/v1/auth/register",
        json={"mobile": "13900002222", "password": "abc12345", "name": "王五"},
    )
    with unit_of_work(db_url) as db:
        user = db.scalars(select(User)).one()
        assert user.mobile_enc and "13900002222" not in user.mobile_enc
        assert user.mobile_index == service.mobile_index("13900002222")
        assert service.user_mobile(user) == "13900002222"


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"mobile": "23900001111", "password": "abc12345", "name": "x"}, 400, "invalid_mobile"),
        ({"mobile": "13900001111", "password": "short1", "name": "x"}, 400, "weak_password"),
        ({"mobile": "13900001111", "password": "abcdefghij", "name": "x"}, 400, "weak_password"),
        ({"mobile": "13900001111", "password": "abc12345", "name": "   "}, 400, "invalid_name"),
        ({"mobile": "13900001111", "password": "abc12345"}, 422, "malformed_request"),
    ],
)
def test_register_rejects_bad_input_by_name(
    client: Any, payload: dict[str, str], status: int, code: str
) -> None:
    response = client.post("/api/v1/auth/register", json=payload)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    if status == 422:
        assert "name" in response.json()["message"]


def test_duplicate_mobile_is_refused_and_nothing_is_written(client: Any, db_url: str) -> None:
    payload = {"mobile": "13900003333", "password": "abc12345", "name": "甲"}
    assert client.post("/api/v1/auth/register", json=payload).status_code == 201
    again = client.post("/api/v1/auth/register", json={**payload, "mobile": "0086 13900003333"})
    assert again.status_code == 409 and again.json()["error"] == "mobile_taken"
    with unit_of_work(db_url) as db:
        assert len(db.scalars(select(User)).all()) == 1


def test_wrong_password_then_throttle(client: Any, customer: dict[str, str]) -> None:
    for _ in range(5):
        bad = client.post(
            "/api/v1/auth/login", json={"mobile": customer["mobile"], "password": "wrong-pass1"}
        )
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_credentials"
    locked = client.post(
        "/api/v1/auth/login", json={"mobile": customer["mobile"], "password": customer["password"]}
    )
    assert locked.status_code == 429 and locked.json()["error"] == "rate_limited"
    assert int(locked.headers["retry-after"]) > 0
    # The window passes: the right password works again.
    with clock.shifted(timedelta(minutes=16)):
        assert bearer(client, customer["mobile"], customer["password"])


def test_unknown_account_answers_like_a_wrong_password(client: Any) -> None:
    response = client.post(
        "/api/v1/auth/login", json={"mobile": "13700000000", "password": "abc12345"}
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_credentials"


def test_logout_revokes_the_token(client: Any, customer_headers: dict[str, str]) -> None:
    assert client.post("/api/v1/auth/logout", headers=customer_headers).status_code == 204
    again = client.get("/api/v1/auth/me", headers=customer_headers)
    assert again.status_code == 401 and again.json()["error"] == "invalid_token"


def test_token_expires(client: Any, customer_headers: dict[str, str]) -> None:
    with clock.shifted(timedelta(hours=25)):
        assert client.get("/api/v1/auth/me", headers=customer_headers).status_code == 401
    assert client.get("/api/v1/auth/me", headers=customer_headers).status_code == 200


def test_anonymous_and_malformed_credentials(client: Any) -> None:
    assert client.get("/api/v1/auth/me").status_code == 401
    odd = client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"})
    assert odd.status_code == 401 and odd.json()["error"] == "invalid_token"


def _staff(db_url: str, username: str = "carol", role: Role = Role.admin) -> str:
    with unit_of_work(db_url) as db:
        return service.add_staff(
            db, username=username, role=role, password="staff-pass-1", name="Carol"
        ).totp_secret


def test_staff_need_a_fresh_totp_code(client: Any, db_url: str) -> None:
    secret = _staff(db_url)
    base = {"username": "carol", "password": "staff-pass-1"}
    missing = client.post("/api/v1/auth/login", json=base)
    assert missing.status_code == 401 and missing.json()["error"] == "totp_required"
    code = service.current_totp(secret)
    wrong_code = f"{(int(code) + 1) % 1_000_000:06d}"
    wrong = client.post("/api/v1/auth/login", json={**base, "totp": wrong_code})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_totp"
    ok = client.post("/api/v1/auth/login", json={**base, "totp": code})
    assert ok.status_code == 200 and ok.json()["user"]["role"] == "admin"
    replay = client.post("/api/v1/auth/login", json={**base, "totp": code})
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_totp"


def test_staff_mfa_optional_for_demos(
    client: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _staff(db_url)
    monkeypatch.setenv("COVERNET_STAFF_MFA", "optional")
    reset_settings()
    ok = client.post("/api/v1/auth/login", json={"username": "carol", "password": "staff-pass-1"})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("COVERNET_SECRET_KEY", "COVERNET_SECRET_KEY"),
        ("COVERNET_FIELD_KEYS", "COVERNET_FIELD_KEYS"),
        ("COVERNET_BLIND_INDEX_KEY", "COVERNET_BLIND_INDEX_KEY"),
        ("COVERNET_STAFF_MFA", "must be 'required'"),
    ],
)
def test_production_refuses_public_secrets_and_optional_mfa(
    monkeypatch: pytest.MonkeyPatch, missing: str, message: str
) -> None:
    from pydantic import ValidationError

    from covernet.core.config import Settings
    from covernet.core.crypto import new_key_entry

    real = {
        "COVERNET_SECRET_KEY": "a-real-secret-key-for-this-test-0123456789",
        "COVERNET_FIELD_KEYS": new_key_entry("k1"),
        "COVERNET_BLIND_INDEX_KEY": "a-real-blind-index-key-0123456789abcdef",
        "COVERNET_STAFF_MFA": "required",
    }
    monkeypatch.setenv("COVERNET_ENV", "production")
    for name, value in real.items():
        monkeypatch.setenv(name, value)
    assert Settings().env.value == "production"  # all real: accepted
    if missing == "COVERNET_STAFF_MFA":
        monkeypatch.setenv(missing, "optional")
    else:
        monkeypatch.delenv(missing)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_login_needs_exactly_one_identifier(client: Any) -> None:
    both = client.post(
        "/api/v1/auth/login",
        json={"mobile": "13900001111", "username": "x", "password": "abc12345"},
    )
    assert both.status_code == 422 and both.json()["error"] == "malformed_request"


def test_cookie_sessions_need_the_csrf_token(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    csrf = sign_in_with_cookie(client, db_url, customer["id"])
    assert client.get("/api/v1/auth/me").json()["id"] == customer["id"]
    refused = client.post("/api/v1/auth/logout")
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
    wrong = client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401


def _admin_headers(client: Any, db_url: str) -> dict[str, str]:
    secret = _staff(db_url, "root", Role.admin)
    response = client.post(
        "/api/v1/auth/login",
        json={"username": "root", "password": "staff-pass-1", "totp": service.current_totp(secret)},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_api_keys_for_machine_clients(
    client: Any, db_url: str, customer_headers: dict[str, str]
) -> None:
    admin = _admin_headers(client, db_url)
    body = {"name": "Anxin core", "role": "insurer", "insurer_code": "anxin-pc"}
    assert (
        client.post("/api/v1/admin/api-keys", json=body, headers=customer_headers).status_code
        == 403
    )
    assert client.post("/api/v1/admin/api-keys", json=body).status_code == 401
    created = client.post("/api/v1/admin/api-keys", json=body, headers=admin)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    machine = {"X-API-Key": key}
    own = client.get("/api/v1/insurer/products", headers=machine)
    assert own.status_code == 200
    items = own.json()["items"]
    assert items and all(i["insurer"]["code"] == "anxin-pc" for i in items)
    assert all(i["versions"][0]["version"] == 1 for i in items)
    # Customers are not insurers; a tampered key is refused.
    assert client.get("/api/v1/insurer/products", headers=customer_headers).status_code == 403
    bad = client.get("/api/v1/insurer/products", headers={"X-API-Key": key[:-2] + "xx"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_api_key"
    listed = client.get("/api/v1/admin/api-keys", headers=admin).json()
    assert listed["total"] == 1 and listed["page"] == 1
    assert [k["prefix"] for k in listed["items"]] == [created.json()["prefix"]]
    assert "key" not in listed["items"][0]
    for n in range(3):
        body_n = {"name": f"partner {n}", "role": "partner"}
        assert client.post("/api/v1/admin/api-keys", json=body_n, headers=admin).status_code == 201
    second = client.get("/api/v1/admin/api-keys?page=2&size=3", headers=admin).json()
    assert second["total"] == 4 and len(second["items"]) == 1
    too_big = client.get("/api/v1/admin/api-keys?size=1000", headers=admin)
    assert too_big.status_code == 422 and "size" in too_big.json()["message"]
    revoked = client.delete(f"/api/v1/admin/api-keys/{created.json()['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert client.get("/api/v1/insurer/products", headers=machine).status_code == 401


def test_insurer_keys_must_name_the_insurer(client: Any, db_url: str) -> None:
    admin = _admin_headers(client, db_url)
    response = client.post(
        "/api/v1/admin/api-keys", json={"name": "x", "role": "insurer"}, headers=admin
    )
    assert response.status_code == 400 and response.json()["error"] == "insurer_required"
    customer_key = client.post(
        "/api/v1/admin/api-keys", json={"name": "x", "role": "customer"}, headers=admin
    )
    assert customer_key.status_code == 400 and customer_key.json()["error"] == "invalid_role"


def test_totp_reset_ends_sessions_and_old_codes(client: Any, db_url: str) -> None:
    headers = staff_headers(client, db_url, "mei", Role.claims)
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    with unit_of_work(db_url) as db:
        old_secret = service.staff_totp_secret(
            db.scalars(select(User).where(User.username == "mei")).one()
        )
        enrolment = service.reset_totp(db, "MEI")
    assert old_secret and enrolment.totp_secret != old_secret
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
    stale = client.post(
        "/api/v1/auth/login",
        json={
            "username": "mei",
            "password": "staff-pass-1",
            "totp": service.current_totp(old_secret),
        },
    )
    assert stale.status_code == 401
    fresh = client.post(
        "/api/v1/auth/login",
        json={
            "username": "mei",
            "password": "staff-pass-1",
            "totp": service.current_totp(enrolment.totp_secret),
        },
    )
    assert fresh.status_code == 200
    with unit_of_work(db_url) as db:
        entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "user.mfa_reset")).one()
        assert entry.subject_id == enrolment.user.id and entry.detail == {"sessions_ended": 1}
        try:
            service.reset_totp(db, "13912345678")
        except CovernetError as exc:
            assert exc.code == "not_found"
        else:
            raise AssertionError("a customer has no TOTP to reset")
