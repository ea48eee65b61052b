"""Payment provider adapters, found by name (``COVERNET_PAYMENT_PROVIDER``)."""

from __future__ import annotations

from collections.abc import Callable

from covernet.core.config import get_settings
from covernet.core.errors import NotFound
from covernet.payments.providers.base import PaymentProvider

_factories: dict[str, Callable[[], PaymentProvider]] = {}


def register(name: str, factory: Callable[[], PaymentProvider]) -> None:
    """Make a provider adapter available under ``name``."""
    _factories[name] = factory


def _builtin() -> None:
    if "sandbox" not in _factories:
        from covernet.payments.providers.sandbox import SandboxProvider

        register("sandbox", SandboxProvider)


def configured_name() -> str:
    return get_settings().payment_provider


def get(name: str | None = None) -> PaymentProvider:
    """The adapter called ``name`` (default: the configured one).

    Only the configured provider is active: callbacks naming another are refused.
    """
    _builtin()
    if not configured_name():
        raise NotFound(
            "no payment provider is configured (COVERNET_PAYMENT_PROVIDER)",
            code="unknown_provider",
        )
    wanted = name or configured_name()
    factory = _factories.get(wanted)
    if factory is None or wanted != configured_name():
        raise NotFound(
            f"payment provider '{wanted}' is not configured",
            code="unknown_provider",
            detail={"provider": wanted},
        )
    return factory()


def sandbox_enabled() -> bool:
    return configured_name() == "sandbox"
