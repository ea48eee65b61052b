"""Insurer endpoints in production: none until named, never the public dev secret."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from covernet.core.config import DEV_SANDBOX_INSURER_SECRET, Settings

PRODUCTION: dict[str, Any] = {
    "env": "production",
    "secret_key": "a-real-secret-key-for-this-test-000000000000",
    "field_keys": "k1:cHJvZHVjdGlvbi1maWVsZC1rZXktMDAwMDAwMDAwMDA=",
    "blind_index_key": "a-real-blind-index-key-for-this-test-00000",
}


def test_development_sends_every_insurer_to_the_sandbox() -> None:
    endpoints = Settings(env="development").insurer_endpoints
    assert list(endpoints) == ["*"] and endpoints["*"].url == "sandbox"


def test_production_has_no_endpoint_until_one_is_named() -> None:
    assert Settings(**PRODUCTION).insurer_endpoints == {}
    named = {"anxin-pc": {"url": "https://core.example/covernet", "secret": "x" * 32}}
    settings = Settings(**PRODUCTION, insurer_endpoints=named)
    assert settings.insurer_endpoints["anxin-pc"].timeout_seconds == 10


def test_production_refuses_the_dev_secret() -> None:
    dev = {"*": {"url": "sandbox", "secret": DEV_SANDBOX_INSURER_SECRET}}
    with pytest.raises(ValidationError, match="COVERNET_INSURER_ENDPOINTS"):
        Settings(**PRODUCTION, insurer_endpoints=dev)


def test_sandbox_insurer_routes_exist_only_when_configured(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from covernet.app import create_app
    from covernet.core.config import reset_settings
    from tests.test_routes import _api_routes

    def paths() -> set[str]:
        routes = _api_routes(create_app().routes)
        return {r.path for r in routes if r.path.startswith("/sandbox/insurer/")}

    assert paths() == {
        "/sandbox/insurer/{insurer_code}/events",
        "/sandbox/insurer/{insurer_code}/fail",
    }
    named = '{"*": {"url": "https://core.example/covernet", "secret": "s3cret"}}'
    monkeypatch.setenv("COVERNET_INSURER_ENDPOINTS", named)
    reset_settings()
    assert paths() == set()
