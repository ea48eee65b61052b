"""Identifiers: random, time-ordered UUIDv7 strings for anything exposed in a URL."""

from __future__ import annotations

import os
import secrets
import time
import uuid


def new_id() -> str:
    """A UUIDv7 (RFC 9562): 48-bit millisecond time, then 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return str(uuid.UUID(int=value))


def new_token(nbytes: int = 32) -> str:
    """An unguessable URL-safe secret (session tokens, API keys)."""
    return secrets.token_urlsafe(nbytes)
