"""Handlers other domains register for what happens to their payments, refunds and
payouts, by purpose (``premium``, ``gift``, ``claim``…); they run in the transaction of
the provider's callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

H = TypeVar("H", bound=Callable[..., None])


class Handlers(Generic[H]):
    def __init__(self) -> None:
        self._by_purpose: dict[str, list[H]] = {}

    def register(self, purpose: str) -> Callable[[H], H]:
        """A decorator adding the handler for ``purpose``."""

        def add(handler: H) -> H:
            self._by_purpose.setdefault(purpose, []).append(handler)
            return handler

        return add

    def of(self, purpose: str) -> list[H]:
        return list(self._by_purpose.get(purpose, []))
