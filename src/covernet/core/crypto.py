"""Field encryption for personal data, with key rotation, and a keyed blind index.

Encrypted values are text tokens ``v1.<keyid>.<data>`` where ``data`` is the
unpadded URL-safe base64 of ``nonce (12 bytes) || AES-256-GCM ciphertext+tag``.
The caller's ``context`` (for example ``"customer.id_number"``) is the associated
data, so a token copied into another column does not decrypt there.

The key ring (``COVERNET_FIELD_KEYS``) is ``keyid:base64key,...``; the first key
encrypts and every key decrypts, so keys rotate by prepending a new entry and
re-encrypting stored values with :meth:`FieldCipher.rotate`.

Equality search over encrypted columns uses :class:`BlindIndex`: an HMAC-SHA256
that is deterministic, keyed (useless without the key) and separated by context.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from covernet.core.config import get_settings

FORMAT_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
MIN_INDEX_KEY_BYTES = 16
_KEY_ID = re.compile(r"[A-Za-z0-9_-]+")
_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]*")


class DecryptionError(Exception):
    """A token could not be decrypted: malformed, unknown key, tampered or wrong context."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict inverse of :func:`_b64encode` (rejects non-canonical encodings)."""
    if not _URLSAFE_B64.fullmatch(text) or len(text) % 4 == 1:
        raise DecryptionError("malformed token: data is not URL-safe base64")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64encode(data) != text:
        raise DecryptionError("malformed token: data is not canonical base64")
    return data


def _check_key(key_id: str, key: bytes) -> None:
    if not _KEY_ID.fullmatch(key_id):
        raise ValueError(f"key id {key_id!r} may only contain letters, digits, '_' and '-'")
    if len(key) != KEY_BYTES:
        raise ValueError(f"key {key_id!r} must be {KEY_BYTES} bytes, got {len(key)}")


def parse_keyring(spec: str) -> list[tuple[str, bytes]]:
    """Parse ``"id1:b64,id2:b64"`` into ``[(key_id, key), ...]``, active key first.

    Keys are standard (or URL-safe) base64 of exactly 32 bytes; ids are unique.
    Raises ValueError naming the offending entry (never echoing key material).
    """
    keys: list[tuple[str, bytes]] = []
    entries = spec.split(",")
    for position, entry in enumerate(entries, start=1):
        key_id, sep, encoded = (part.strip() for part in entry.strip().partition(":"))
        if not entry.strip():
            if len(entries) == 1:
                raise ValueError("key ring is empty: expected 'keyid:base64key[,...]'")
            raise ValueError(f"key ring entry {position} is empty (stray comma?)")
        if not sep:
            raise ValueError(f"key ring entry {position} must look like 'keyid:base64key'")
        try:
            key = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
        except binascii.Error:
            raise ValueError(f"key {key_id!r} is not valid base64") from None
        _check_key(key_id, key)
        if any(existing == key_id for existing, _ in keys):
            raise ValueError(f"key id {key_id!r} appears more than once in the key ring")
        keys.append((key_id, key))
    return keys


class FieldCipher:
    """AES-256-GCM over a key ring; the first key is active (used to encrypt)."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("FieldCipher needs at least one key")
        self._keys: dict[str, AESGCM] = {}
        for key_id, key in keys:
            _check_key(key_id, key)
            if key_id in self._keys:
                raise ValueError(f"key id {key_id!r} appears more than once in the key ring")
            self._keys[key_id] = AESGCM(key)
        self.active_key_id = keys[0][0]

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """Encrypt with the active key and a fresh random nonce."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.active_key_id].encrypt(
            nonce, plaintext.encode("utf-8"), context.encode("utf-8")
        )
        return f"{FORMAT_VERSION}.{self.active_key_id}.{_b64encode(nonce + sealed)}"

    def decrypt(self, token: str, *, context: str) -> str:
        """Decrypt a token made by :meth:`encrypt` under the same ``context``."""
        key_id, data = self._split(token)
        aead = self._keys.get(key_id)
        if aead is None:
            raise DecryptionError(f"token was encrypted with unknown key {key_id!r}")
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError("malformed token: data too short")
        try:
            plain = aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], context.encode("utf-8"))
            return plain.decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise DecryptionError(
                "token failed authentication (tampered or wrong context)"
            ) from None

    def key_id_of(self, token: str) -> str:
        """The key id a token names (not verified; raises DecryptionError if malformed)."""
        return self._split(token)[0]

    def needs_rotation(self, token: str) -> bool:
        """True when the token was not encrypted with the active key."""
        return self.key_id_of(token) != self.active_key_id

    def rotate(self, token: str, *, context: str) -> str:
        """Verify the token and return it under the active key.

        A token already under the active key is returned unchanged (after checking
        that it decrypts), so rotating a whole table twice does no extra work.
        """
        plaintext = self.decrypt(token, context=context)
        if not self.needs_rotation(token):
            return token
        return self.encrypt(plaintext, context=context)

    @staticmethod
    def _split(token: str) -> tuple[str, bytes]:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != FORMAT_VERSION or not _KEY_ID.fullmatch(parts[1]):
            raise DecryptionError(f"malformed token: expected '{FORMAT_VERSION}.<keyid>.<data>'")
        return parts[1], _b64decode(parts[2])


class BlindIndex:
    """Deterministic keyed digest for equality lookups on encrypted values.

    Callers normalise values first (e.g. :func:`covernet.core.cn_identity.parse_id_number`)
    so that equal values produce equal digests.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_INDEX_KEY_BYTES:
            raise ValueError(f"blind index key must be at least {MIN_INDEX_KEY_BYTES} bytes")
        self._key = key

    def digest(self, value: str, *, context: str) -> str:
        """Hex HMAC-SHA256 of ``context + "\\x00" + value``."""
        if "\x00" in context:
            raise ValueError("blind index context must not contain NUL")
        message = f"{context}\x00{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


@lru_cache(maxsize=1)
def get_cipher() -> FieldCipher:
    """The process-wide cipher from ``COVERNET_FIELD_KEYS``."""
    return FieldCipher(parse_keyring(get_settings().field_keys))


@lru_cache(maxsize=1)
def get_blind_index() -> BlindIndex:
    """The process-wide blind index from ``COVERNET_BLIND_INDEX_KEY`` (UTF-8 bytes)."""
    return BlindIndex(get_settings().blind_index_key.encode("utf-8"))


def reset_crypto() -> None:
    """Forget the cached cipher and blind index (after settings changed)."""
    get_cipher.cache_clear()
    get_blind_index.cache_clear()


def new_key_entry(key_id: str) -> str:
    """A fresh ``keyid:base64key`` entry (32 random bytes) to prepend to the key ring."""
    key = os.urandom(KEY_BYTES)
    _check_key(key_id, key)
    return f"{key_id}:{base64.b64encode(key).decode('ascii')}"
