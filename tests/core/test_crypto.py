from __future__ import annotations

import base64
import os
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covernet.core import crypto
from covernet.core.config import DEV_FIELD_KEYS, reset_settings
from covernet.core.crypto import (
    BlindIndex,
    DecryptionError,
    FieldCipher,
    new_key_entry,
    parse_keyring,
)

OLD = ("k1", bytes(range(32)))
NEW = ("k2", bytes(range(32, 64)))
CONTEXT = "customer.id_number"
B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_parse_keyring() -> None:
    spec = f"k1:{_b64(OLD[1])}, k2:{_b64(NEW[1])}"
    assert parse_keyring(spec) == [OLD, NEW]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "empty"),
        (f"k1:{_b64(OLD[1])},", "entry 2 is empty"),
        (_b64(OLD[1]), "keyid:base64key"),
        (f"bad.id:{_b64(OLD[1])}", "may only contain"),
        (f":{_b64(OLD[1])}", "may only contain"),
        ("k1:not base64!", "not valid base64"),
        (f"k1:{_b64(bytes(16))}", "must be 32 bytes"),
        (f"k1:{_b64(OLD[1])},k1:{_b64(NEW[1])}", "more than once"),
    ],
)
def test_parse_keyring_rejects(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_keyring(spec)


def test_new_key_entry_is_parseable_and_random() -> None:
    first, second = new_key_entry("2025-01"), new_key_entry("2025-01")
    assert first != second
    [(key_id, key)] = parse_keyring(first)
    assert key_id == "2025-01" and len(key) == 32
    with pytest.raises(ValueError):
        new_key_entry("has space")


@given(st.text(), st.text(min_size=1))
def test_round_trip_arbitrary_text(plaintext: str, context: str) -> None:
    cipher = FieldCipher([OLD])
    token = cipher.encrypt(plaintext, context=context)
    assert token.startswith("v1.k1.")
    assert "=" not in token
    assert cipher.decrypt(token, context=context) == plaintext


def test_nonce_is_random() -> None:
    cipher = FieldCipher([OLD])
    first, second = (cipher.encrypt("13812341234", context=CONTEXT) for _ in range(2))
    assert first != second
    assert first[:18] != second[:18]  # the nonce leads the data


def test_wrong_context_fails() -> None:
    cipher = FieldCipher([OLD])
    token = cipher.encrypt("11010519491231002X", context=CONTEXT)
    with pytest.raises(DecryptionError):
        cipher.decrypt(token, context="customer.mobile")


@given(st.text(max_size=40), st.data())
def test_any_single_character_change_fails(plaintext: str, data: st.DataObject) -> None:
    cipher = FieldCipher([OLD])
    token = cipher.encrypt(plaintext, context=CONTEXT)
    start = len("v1.k1.")
    position = data.draw(st.integers(min_value=start, max_value=len(token) - 1))
    replacement = data.draw(st.sampled_from(B64_CHARS).filter(lambda c: c != token[position]))
    tampered = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(DecryptionError):
        cipher.decrypt(tampered, context=CONTEXT)


@pytest.mark.parametrize(
    "token",
    ["", "v1.k1", "v2.k1.AAAA", "v1.k1.AAAA", "v1.k1.!!!!", f"v1.k9.{'A' * 40}", "v1.k1.a.b",
     "v1..AAAA", f"v1.k1.{'A' * 41}"],
)  # fmt: skip
def test_malformed_tokens_fail(token: str) -> None:
    with pytest.raises(DecryptionError):
        FieldCipher([OLD]).decrypt(token, context=CONTEXT)


def test_truncated_token_fails() -> None:
    cipher = FieldCipher([OLD])
    token = cipher.encrypt("secret", context=CONTEXT)
    with pytest.raises(DecryptionError):
        cipher.decrypt(token[:-4], context=CONTEXT)


def test_rotation() -> None:
    old_cipher = FieldCipher([OLD])
    token = old_cipher.encrypt("张三", context=CONTEXT)
    rotated_ring = FieldCipher([NEW, OLD])
    assert rotated_ring.active_key_id == "k2"
    assert rotated_ring.key_id_of(token) == "k1"
    assert rotated_ring.needs_rotation(token)
    assert rotated_ring.decrypt(token, context=CONTEXT) == "张三"

    rotated = rotated_ring.rotate(token, context=CONTEXT)
    assert rotated_ring.key_id_of(rotated) == "k2"
    assert not rotated_ring.needs_rotation(rotated)
    assert rotated_ring.decrypt(rotated, context=CONTEXT) == "张三"
    assert rotated_ring.rotate(rotated, context=CONTEXT) == rotated
    with pytest.raises(DecryptionError, match="unknown key"):
        old_cipher.decrypt(rotated, context=CONTEXT)
    with pytest.raises(DecryptionError):
        rotated_ring.rotate(token, context="other")


def test_cipher_rejects_bad_rings() -> None:
    with pytest.raises(ValueError):
        FieldCipher([])
    with pytest.raises(ValueError):
        FieldCipher([OLD, ("k1", NEW[1])])
    with pytest.raises(ValueError):
        FieldCipher([("k1", bytes(31))])


CONTEXTS = st.text().filter(lambda c: "\x00" not in c)


@given(st.text(), CONTEXTS, CONTEXTS)
def test_blind_index_is_deterministic_and_context_separated(
    value: str, context: str, other: str
) -> None:
    index = BlindIndex(b"k" * 32)
    digest = index.digest(value, context=context)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest == BlindIndex(b"k" * 32).digest(value, context=context)
    if other != context:
        assert index.digest(value, context=other) != digest


def test_blind_index_refuses_a_context_with_nul() -> None:
    with pytest.raises(ValueError, match="NUL"):
        BlindIndex(b"k" * 32).digest("x", context="a\x00b")


def test_blind_index_is_keyed_and_value_sensitive() -> None:
    index = BlindIndex(b"k" * 32)
    digest = index.digest("13812341234", context="mobile")
    assert BlindIndex(b"j" * 32).digest("13812341234", context="mobile") != digest
    assert index.digest("13812341235", context="mobile") != digest
    with pytest.raises(ValueError):
        BlindIndex(b"short")
    with pytest.raises(ValueError):
        index.digest("x", context="a\x00b")


@pytest.fixture
def clean_settings() -> Iterator[None]:
    reset_settings()
    crypto.reset_crypto()
    yield
    reset_settings()
    crypto.reset_crypto()


@pytest.mark.usefixtures("clean_settings")
def test_cached_objects_follow_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    old_entry = f"k1:{_b64(OLD[1])}"
    monkeypatch.setenv("COVERNET_FIELD_KEYS", old_entry)
    monkeypatch.setenv("COVERNET_BLIND_INDEX_KEY", "b" * 32)
    reset_settings()
    cipher = crypto.get_cipher()
    assert crypto.get_cipher() is cipher
    index = crypto.get_blind_index()
    assert crypto.get_blind_index() is index
    assert index.digest("v", context="c") == BlindIndex(b"b" * 32).digest("v", context="c")
    token = cipher.encrypt("x", context=CONTEXT)

    monkeypatch.setenv("COVERNET_FIELD_KEYS", f"{new_key_entry('fresh')},{old_entry}")
    monkeypatch.setenv("COVERNET_BLIND_INDEX_KEY", os.urandom(24).hex())
    reset_settings()
    assert crypto.get_cipher() is cipher  # still cached until reset_crypto()
    crypto.reset_crypto()
    rotated = crypto.get_cipher()
    assert rotated.active_key_id == "fresh"
    assert rotated.needs_rotation(token)
    assert rotated.decrypt(rotated.rotate(token, context=CONTEXT), context=CONTEXT) == "x"
    assert crypto.get_blind_index().digest("v", context="c") != index.digest("v", context="c")


def test_development_key_ring_is_usable() -> None:
    cipher = FieldCipher(parse_keyring(DEV_FIELD_KEYS))
    assert cipher.decrypt(cipher.encrypt("x", context="c"), context="c") == "x"
