"""Partner event signatures: hex HMAC-SHA256 over ``"<timestamp>.<raw body>"``.

The partner sends ``X-Covernet-Timestamp`` (Unix seconds) and ``X-Covernet-Signature``
with its own secret (``COVERNET_PARTNER_SECRETS``, by partner code) — the same scheme the
platform signs its own webhooks and the sandbox provider its callbacks with.  A
timestamp further than ``COVERNET_PARTNER_EVENT_WINDOW_SECONDS`` from now (either way)
is stale: a captured request cannot be replayed later, and within the window the event
id makes a replay count once.  Pure apart from the settings and the clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.errors import Forbidden, Unauthenticated

TIMESTAMP_HEADER = "X-Covernet-Timestamp"
SIGNATURE_HEADER = "X-Covernet-Signature"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers a partner sends (for tests, the CLI and partners' examples)."""
    stamp = str(int(clock.now().timestamp()) if timestamp is None else timestamp)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(secret, stamp, body)}


def verify(partner_code: str, headers: Mapping[str, str], body: bytes) -> None:
    """Raise unless ``body`` was signed just now with the partner's secret."""
    settings = get_settings()
    secret = settings.partner_secrets.get(partner_code)
    if not secret:
        raise Forbidden(
            "no signing secret is configured for this partner",
            code="partner_secret_missing",
        )
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "").strip()
    signature = lowered.get(SIGNATURE_HEADER.lower(), "").strip().lower()
    if not timestamp.isdigit() or not signature:
        raise Unauthenticated(
            "the event is not signed",
            code="signature_missing",
            detail={"headers": [TIMESTAMP_HEADER, SIGNATURE_HEADER]},
        )
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode()):
        raise Unauthenticated("the event's signature does not verify", code="signature_invalid")
    window = settings.partner_event_window_seconds
    if abs(clock.now().timestamp() - int(timestamp)) > window:
        raise Unauthenticated(
            "the event's timestamp is outside the accepted window",
            code="stale_event",
            detail={"window_seconds": window},
        )
