"""Insurer adapters: how an outbox event reaches an insurer's core system (R19).

An adapter takes one :class:`Event` and either returns (delivered) or raises
:class:`DeliveryFailed` (try again later).  The shipped adapter is the HTTP webhook:

* ``POST`` the event as JSON to the insurer's endpoint;
* ``X-Covernet-Timestamp``: Unix seconds at sending;
* ``X-Covernet-Signature``: hex HMAC-SHA256 over ``"<timestamp>.<body>"`` with the
  insurer's shared secret;
* ``X-Covernet-Event-Id``: the outbox id; delivery is at least once, so the insurer
  dedupes by it;
* any 2xx answer is delivered; anything else, or a transport error or timeout, fails.

Endpoints come from ``COVERNET_INSURER_ENDPOINTS`` (JSON: insurer code, or ``*`` for
any other, to ``{"url", "secret", "timeout_seconds"}``).  The URL ``sandbox`` means
the in-app sandbox insurer, ``{COVERNET_PUBLIC_URL}/sandbox/insurer/{code}/events``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from covernet.core import clock
from covernet.core.config import get_settings

if TYPE_CHECKING:
    from covernet.core.config import InsurerEndpoint

TIMESTAMP_HEADER = "X-Covernet-Timestamp"
SIGNATURE_HEADER = "X-Covernet-Signature"
EVENT_ID_HEADER = "X-Covernet-Event-Id"
SANDBOX = "sandbox"
SANDBOX_PATH = "/sandbox/insurer/{insurer_code}/events"


@dataclass(frozen=True)
class Event:
    """One outbox row as the insurer sees it."""

    id: str
    topic: str
    insurer_code: str
    occurred_at: datetime
    payload: dict[str, Any]

    def body(self) -> bytes:
        """The canonical JSON body (sorted keys, no spaces): what is signed and sent."""
        document = {
            "event_id": self.id,
            "topic": self.topic,
            "insurer_code": self.insurer_code,
            "occurred_at": self.occurred_at.isoformat(),
            "data": self.payload,
        }
        return json.dumps(
            document, ensure_ascii=False, sort_keys=True, separators=(",", ":")
        ).encode()


class DeliveryFailed(Exception):
    """The insurer did not take the event; ``reason`` is short and holds no payload."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:200]


class InsurerAdapter(Protocol):
    def send(self, event: Event) -> None:
        """Deliver ``event`` or raise :class:`DeliveryFailed`."""


class Poster(Protocol):
    """What the webhook adapter needs of an HTTP client (httpx.Client, TestClient)."""

    def post(
        self, url: str, *, content: bytes, headers: dict[str, str], timeout: float
    ) -> httpx.Response: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(
    event_id: str, secret: str, body: bytes, *, at: datetime | None = None
) -> dict[str, str]:
    timestamp = str(int((at or clock.now()).timestamp()))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        EVENT_ID_HEADER: event_id,
    }


def endpoint_for(insurer_code: str) -> InsurerEndpoint | None:
    endpoints = get_settings().insurer_endpoints
    return endpoints.get(insurer_code) or endpoints.get("*")


def url_of(endpoint: InsurerEndpoint, insurer_code: str) -> str:
    if endpoint.url == SANDBOX:
        base = get_settings().public_url.rstrip("/")
        return base + SANDBOX_PATH.format(insurer_code=insurer_code)
    return endpoint.url


def sandbox_configured() -> bool:
    """Whether any insurer is served by the sandbox (its routes exist only then)."""
    return any(e.url == SANDBOX for e in get_settings().insurer_endpoints.values())


def sandbox_secret(insurer_code: str) -> str | None:
    """The shared secret for ``insurer_code`` when the sandbox plays that insurer."""
    endpoint = endpoint_for(insurer_code)
    return endpoint.secret if endpoint is not None and endpoint.url == SANDBOX else None


class WebhookAdapter:
    """POST the signed event to the insurer's endpoint."""

    def __init__(self, insurer_code: str, endpoint: InsurerEndpoint, client: Poster) -> None:
        self.insurer_code = insurer_code
        self.endpoint = endpoint
        self.client = client

    def send(self, event: Event) -> None:
        body = event.body()
        headers = signed_headers(event.id, self.endpoint.secret, body)
        try:
            response = self.client.post(
                url_of(self.endpoint, self.insurer_code),
                content=body,
                headers=headers,
                timeout=self.endpoint.timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(type(exc).__name__) from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code}")


class NoEndpoint:
    """An insurer nobody configured: every attempt fails visibly (then dead, R19 monitor)."""

    def send(self, event: Event) -> None:
        raise DeliveryFailed("no endpoint configured (COVERNET_INSURER_ENDPOINTS)")


AdapterFactory = Callable[[str, "InsurerEndpoint", Poster], InsurerAdapter]
_kinds: dict[str, AdapterFactory] = {}


def register(scheme: str, factory: AdapterFactory) -> None:
    """Use ``factory`` for endpoints whose URL starts with ``<scheme>:`` (say an insurer
    whose core system takes files or a message queue); webhooks are the default."""
    _kinds[scheme] = factory


def adapter_for(insurer_code: str, client: Poster) -> InsurerAdapter:
    endpoint = endpoint_for(insurer_code)
    if endpoint is None:
        return NoEndpoint()
    scheme = endpoint.url.split(":", 1)[0]
    factory = _kinds.get(scheme, WebhookAdapter)
    return factory(insurer_code, endpoint, client)
