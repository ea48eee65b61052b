"""Parallel requests cannot beat the login throttle, reuse a TOTP code, or register a
mobile twice; unexpected failures answer in the platform's error format."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from covernet.core.db import unit_of_work
from covernet.identity import service
from covernet.identity.models import Role
from tests.conftest import run_async


def _gather(app: Any, calls: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            return await asyncio.gather(*(http.post(url, json=body) for url, body in calls))

    return run_async(main())


def test_parallel_wrong_passwords_never_exceed_the_limit(
    app: Any, customer: dict[str, str]
) -> None:
    body = {"mobile": customer["mobile"], "password": "wrong-pass1"}
    responses = _gather(app, [("/api/v1/auth/login", body)] * 20)
    codes = sorted(r.status_code for r in responses)
    assert codes.count(401) <= 5 and codes.count(429) >= 15 and set(codes) <= {401, 429}


def test_parallel_registrations_of_one_mobile_create_one_account(app: Any, db_url: str) -> None:
    body = {"mobile": "13500001111", "password": "abc12345", "name": "并发"}
    responses = _gather(app, [("/api/v1/auth/register", body)] * 8)
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1 and codes.count(409) == 7, [r.text for r in responses]
    assert all(r.json()["error"] == "mobile_taken" for r in responses if r.status_code == 409)


def test_one_totp_code_admits_one_of_two_parallel_logins(app: Any, db_url: str) -> None:
    with unit_of_work(db_url) as db:
        secret = service.add_staff(
            db, username="gina", role=Role.claims, password="staff-pass-1", name="Gina"
        ).totp_secret
    body = {"username": "gina", "password": "staff-pass-1", "totp": service.current_totp(secret)}
    responses = _gather(app, [("/api/v1/auth/login", body)] * 4)
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 401, 401, 401]


def test_failures_from_one_address_are_limited_across_accounts(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from covernet.core.config import reset_settings

    monkeypatch.setenv("COVERNET_LOGIN_MAX_FAILURES_PER_IP", "3")
    reset_settings()
    for n in range(3):
        r = client.post("/api/v1/auth/login", json={"mobile": f"1370000000{n}", "password": "x1"})
        assert r.status_code == 401
    other = client.post("/api/v1/auth/login", json={"mobile": "13700000009", "password": "x1"})
    assert other.status_code == 429


def test_registrations_per_address_are_limited(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from covernet.core.config import reset_settings

    monkeypatch.setenv("COVERNET_REGISTER_MAX_PER_IP", "2")
    reset_settings()
    for n in range(2):
        r = client.post(
            "/api/v1/auth/register",
            json={"mobile": f"1350000200{n}", "password": "abc12345", "name": "甲"},
        )
        assert r.status_code == 201
    third = client.post(
        "/api/v1/auth/register",
        json={"mobile": "13500002009", "password": "abc12345", "name": "甲"},
    )
    assert third.status_code == 429 and third.json()["error"] == "rate_limited"


def test_unexpected_errors_answer_in_the_error_format(
    app: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from starlette.testclient import TestClient

    from covernet.catalog import service as catalog

    def broken(*_: Any) -> Any:
        raise RuntimeError("boom with 13800138000 inside")

    monkeypatch.setattr(catalog, "snapshot", broken)
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as http:
        response = http.get("/api/v1/products")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error" and "13800138000" not in response.text
    # Logged by type and route only; the message (personal data) is not passed on.
    assert "RuntimeError" in caplog.text and "/api/v1/products" in caplog.text
    assert "13800138000" not in caplog.text
