"""Payments fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.payments.helpers import handled, new_payment, register_handlers


@pytest.fixture(autouse=True)
def payment_handlers() -> Iterator[list[tuple[str, str]]]:
    register_handlers()
    handled.clear()
    yield handled
    handled.clear()


@pytest.fixture
def payment_id(client: Any, db_url: str, customer: dict[str, str]) -> str:
    """A pending sandbox payment of ¥100.00 by the customer (the app is running)."""
    return new_payment(db_url, customer["id"])
