"""Money is an integer number of fen (1 yuan = 100 fen); floats are never used.

* :func:`parse_yuan` turns user input such as ``"1,000.50"`` into fen, strictly.
* :func:`format_fen` shows an exact amount: ``¥1,000,000.00``, ``-¥3.50``.
* :func:`format_fen_compact` shows sums insured briefly and never rounds:

  - ``zh``: ``30万``, ``1.5万``, ``2亿``, ``5000元``, ``600元``;
  - ``en``: ``¥300k``, ``¥1.5M``, ``¥2B``, ``¥600``.

  A larger unit is used only when the amount is at least one unit and fits in it
  with at most two decimals; otherwise the next smaller unit is tried, ending in
  whole yuan (``12345元`` / ``¥12,345``, with ``.xx`` when there are fen).

``lang`` values starting with ``"en"`` select English; anything else is Chinese.
"""

from __future__ import annotations

import re
from decimal import Decimal

CURRENCY = "CNY"
FEN_PER_YUAN = 100
_MAX_INPUT_LENGTH = 40
_MAX_DIGITS = 30  # Decimal inputs of 10**31 yuan or more are refused
_AMOUNT = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]+))?")
_ZH_UNITS = ((100_000_000, "亿"), (10_000, "万"))
_EN_UNITS = ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k"))


def _check_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")


def yuan_to_fen(yuan: int) -> int:
    """Whole yuan to fen."""
    _check_int(yuan, "yuan")
    return yuan * FEN_PER_YUAN


def parse_yuan(text: str | int | Decimal) -> int:
    """Parse a non-negative yuan amount into fen.

    Accepts ``int``, finite ``Decimal`` and strings of digits with optional
    thousands commas and up to two decimals (``"5"``, ``"5.00"``, ``"1,000.5"``).
    Raises ValueError for floats, negatives, NaN/infinity, empty input and more
    than two decimal places.
    """
    if isinstance(text, bool | float) or not isinstance(text, str | int | Decimal):
        raise ValueError(f"amount must be given as text, int or Decimal, not {type(text).__name__}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("amount must not be negative")
        return text * FEN_PER_YUAN
    if isinstance(text, Decimal):
        return _decimal_to_fen(text)
    raw = text.strip()
    if not raw:
        raise ValueError("amount is empty")
    if len(raw) > _MAX_INPUT_LENGTH:
        raise ValueError("amount is too long")
    if raw.startswith("-"):
        raise ValueError("amount must not be negative")
    if raw.lower().lstrip("+") in {"nan", "snan", "inf", "infinity"}:
        raise ValueError("amount must be a finite number")
    match = _AMOUNT.fullmatch(raw)
    if match is None:
        raise ValueError(
            f"amount {raw!r} is not a number of yuan: use digits, optional thousands commas "
            "and up to 2 decimals, e.g. 1,000.50"
        )
    decimals = match.group(1)
    if decimals is not None and len(decimals) > 2:
        raise ValueError("amount has more than 2 decimal places (the smallest unit is 0.01 yuan)")
    return _decimal_to_fen(Decimal(raw.replace(",", "")))


def _decimal_to_fen(amount: Decimal) -> int:
    if not amount.is_finite():
        raise ValueError("amount must be a finite number")
    if amount < 0:
        raise ValueError("amount must not be negative")
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite Decimals have an int exponent
    if exponent < -2:
        raise ValueError("amount has more than 2 decimal places (the smallest unit is 0.01 yuan)")
    if amount.adjusted() > _MAX_DIGITS:
        raise ValueError("amount is too large")
    # Integer arithmetic: Decimal multiplication would round beyond 28 digits.
    scale: int = 10 ** (exponent + 2)
    return int("".join(map(str, digits))) * scale


def _is_en(lang: str) -> bool:
    return lang.lower().startswith("en")


def format_fen(fen: int, *, lang: str = "zh") -> str:
    """Exact amount with two decimals and thousands commas: ``¥1,000.50``, ``-¥3.50``.

    The format is the same in Chinese and English; ``lang`` is accepted for symmetry.
    """
    _check_int(fen, "fen")
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}¥{yuan:,}.{cents:02d}"


def _plain(fen: int, unit_fen: int) -> str | None:
    """``fen / unit_fen`` with trailing zeros dropped, or None if it needs > 2 decimals."""
    whole, rest = divmod(fen, unit_fen)
    if rest * 100 % unit_fen:
        return None
    hundredths = rest * 100 // unit_fen
    return f"{whole}.{hundredths:02d}".rstrip("0").rstrip(".") if hundredths else str(whole)


def format_fen_compact(fen: int, *, lang: str = "zh") -> str:
    """Brief, exact amount for sums insured (see the module docstring for the rules)."""
    _check_int(fen, "fen")
    sign = "-" if fen < 0 else ""
    amount = abs(fen)
    english = _is_en(lang)
    for unit_yuan, suffix in _EN_UNITS if english else _ZH_UNITS:
        unit_fen = unit_yuan * FEN_PER_YUAN
        if amount >= unit_fen and (text := _plain(amount, unit_fen)) is not None:
            return f"{sign}¥{text}{suffix}" if english else f"{sign}{text}{suffix}"
    yuan, cents = divmod(amount, FEN_PER_YUAN)
    whole = f"{yuan:,}" if english else str(yuan)
    text = f"{whole}.{cents:02d}" if cents else whole
    return f"{sign}¥{text}" if english else f"{sign}{text}元"
