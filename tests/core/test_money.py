from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covernet.core.money import (
    CURRENCY,
    format_fen,
    format_fen_compact,
    parse_yuan,
    yuan_to_fen,
)

fens = st.integers(min_value=0, max_value=10**15)


def test_currency() -> None:
    assert CURRENCY == "CNY"


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("5", 500),
        ("5.0", 500),
        ("5.00", 500),
        ("1,000.5", 100_050),
        (" 0.01 ", 1),
        ("1,234,567.89", 123_456_789),
        ("0", 0),
        (5, 500),
        (Decimal("5.05"), 505),
        (Decimal("1E+3"), 100_000),
    ],
)
def test_parse_yuan(text: str | int | Decimal, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("5.001", "more than 2 decimal places"),
        (Decimal("5.001"), "more than 2 decimal places"),
        (Decimal("5.000"), "more than 2 decimal places"),
        ("-5", "negative"),
        (-5, "negative"),
        (Decimal("-0.01"), "negative"),
        ("NaN", "finite"),
        ("inf", "finite"),
        (Decimal("NaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        ("", "empty"),
        ("   ", "empty"),
        (5.0, "float"),
        (True, "bool"),
        ("5.", "not a number"),
        (".5", "not a number"),
        ("1,00", "not a number"),
        ("10,00.00", "not a number"),
        ("1e3", "not a number"),
        ("５", "not a number"),
        ("¥5", "not a number"),
        ("1" * 41, "too long"),
        (Decimal("1E+40"), "too large"),
    ],
)
def test_parse_yuan_rejects(text: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_yuan(text)  # type: ignore[arg-type]


def test_format_fen() -> None:
    assert format_fen(500) == "¥5.00"
    assert format_fen(100_000_000) == "¥1,000,000.00"
    assert format_fen(-350) == "-¥3.50"
    assert format_fen(7, lang="en") == "¥0.07"
    with pytest.raises(TypeError):
        format_fen(5.0)  # type: ignore[arg-type]


@given(fens)
def test_format_then_parse_round_trips(fen: int) -> None:
    text = format_fen(fen)
    assert re.fullmatch(r"¥[0-9,]+\.[0-9]{2}", text)
    assert parse_yuan(text.removeprefix("¥")) == fen


@given(st.integers(min_value=-(10**12), max_value=-1))
def test_negative_format(fen: int) -> None:
    assert format_fen(fen) == "-" + format_fen(-fen)


@given(fens)
def test_plain_decimal_strings_round_trip(fen: int) -> None:
    yuan, cents = divmod(fen, 100)
    assert parse_yuan(f"{yuan}.{cents:02d}") == fen
    assert parse_yuan(Decimal(fen) / 100) == fen


def test_yuan_to_fen() -> None:
    assert yuan_to_fen(300_000) == 30_000_000
    with pytest.raises(TypeError):
        yuan_to_fen(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("yuan", "zh", "en"),
    [
        (300_000, "30万", "¥300k"),
        (1_000_000, "100万", "¥1M"),
        (15_000, "1.5万", "¥15k"),
        (5_000, "5000元", "¥5k"),
        (600, "600元", "¥600"),
        (1_500_000, "150万", "¥1.5M"),
        (200_000_000, "2亿", "¥200M"),
        (3_000_000_000, "30亿", "¥3B"),
        (12_345, "12345元", "¥12,345"),
        (12_300, "1.23万", "¥12.3k"),
        (0, "0元", "¥0"),
    ],
)
def test_format_fen_compact(yuan: int, zh: str, en: str) -> None:
    assert format_fen_compact(yuan_to_fen(yuan)) == zh
    assert format_fen_compact(yuan_to_fen(yuan), lang="en") == en
    assert format_fen_compact(yuan_to_fen(yuan), lang="en-US") == en


def test_format_fen_compact_fen_and_negative() -> None:
    assert format_fen_compact(60_050) == "600.50元"
    assert format_fen_compact(60_050, lang="en") == "¥600.50"
    assert format_fen_compact(-3_000_000) == "-3万"
    assert format_fen_compact(-3_000_000, lang="en") == "-¥30k"


_ZH_UNITS = {"亿": 100_000_000, "万": 10_000, "元": 1}
_EN_UNITS = {"B": 1_000_000_000, "M": 1_000_000, "k": 1_000, "": 1}


@given(fens)
def test_compact_is_exact(fen: int) -> None:
    """Compact forms never round: reading them back gives the same amount."""
    zh = re.fullmatch(r"([0-9]+(?:\.[0-9]{1,2})?)(亿|万|元)", format_fen_compact(fen))
    assert zh is not None
    assert Decimal(zh[1]) * _ZH_UNITS[zh[2]] * 100 == fen
    en = re.fullmatch(r"¥([0-9,]+(?:\.[0-9]{1,2})?)([BMk]?)", format_fen_compact(fen, lang="en"))
    assert en is not None
    assert Decimal(en[1].replace(",", "")) * _EN_UNITS[en[2]] * 100 == fen
