"""/healthz tells whether the app and its database are up."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient


def test_healthz_is_ok_with_the_database(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_healthz_answers_503_when_the_database_is_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from covernet.app import create_app
    from covernet.core.config import reset_settings
    from covernet.core.db import dispose_engines

    # A database path whose directory is a file: SQLite cannot open it.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    monkeypatch.setenv("COVERNET_DATABASE_URL", f"sqlite:///{blocker}/covernet.db")
    reset_settings()
    dispose_engines()
    try:
        with TestClient(create_app(), base_url="https://testserver") as http:
            response = http.get("/healthz")
        assert response.status_code == 503
        assert response.json() == {"status": "down", "database": "unreachable"}
    finally:
        dispose_engines()
        reset_settings()
