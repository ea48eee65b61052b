"""Masks for showing personal data on screens, receipts and logs.

Each mask keeps a fixed head/tail of a well-formed value.  A value shorter than
the format it is meant for is masked completely, so short or malformed input
never reveals more than it hides.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-]")


def _keep(value: str, head: int, tail: int, min_length: int) -> str:
    """Keep ``head`` leading and ``tail`` trailing characters, star the rest.

    Values shorter than ``min_length`` become all stars (same length).
    """
    if len(value) < min_length:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail :]


def mask_id_number(value: str) -> str:
    """``11010519491231002X`` -> ``110105********002X`` (first 6, last 4)."""
    return _keep(value.strip(), 6, 4, 18)


def mask_mobile(value: str) -> str:
    """``13812341234`` -> ``138****1234`` (first 3, last 4)."""
    return _keep(value.strip(), 3, 4, 11)


def mask_name(value: str) -> str:
    """Keep the first character: ``张三丰`` -> ``张**``, ``Li`` -> ``L*``; ``张`` -> ``*``."""
    name = value.strip()
    return _keep(name, 1, 0, 2)


def mask_bank_account(value: str) -> str:
    """``6222021234567890123`` -> ``**** 0123``.

    Spaces and hyphens are ignored; fewer than 8 characters gives ``****``.
    """
    digits = _SEPARATORS.sub("", value)
    if len(digits) < 8:
        return "****"
    return f"**** {digits[-4:]}"


def mask_email(value: str) -> str:
    """``alice@example.com`` -> ``a***@example.com``.

    The local part is always shown as three stars after its first character (so
    its length is not revealed); a one-character local part is fully starred.
    Anything without ``local@domain`` shape is masked completely.
    """
    email = value.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return "*" * len(email)
    shown = local[0] if len(local) > 1 else ""
    return f"{shown}***@{domain}"


def mask_bank_card(value: str) -> str:
    """``6222021234567890123`` -> ``6222 **** **** 0123`` (first 4, last 4).

    Spaces and hyphens are ignored and the length is not revealed; fewer than 12
    characters keep only the last 4 (``**** 0123``), fewer than 8 give ``****``.
    """
    digits = _SEPARATORS.sub("", value)
    if len(digits) < 12:
        return mask_bank_account(digits)
    return f"{digits[:4]} **** **** {digits[-4:]}"
