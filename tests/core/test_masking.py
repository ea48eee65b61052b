from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covernet.core.cn_identity import make_id_number
from covernet.core.masking import (
    mask_bank_account,
    mask_email,
    mask_id_number,
    mask_mobile,
    mask_name,
)

digits = st.text(alphabet="0123456789", min_size=1)


def test_examples() -> None:
    assert mask_id_number("11010519491231002X") == "110105********002X"
    assert mask_mobile("13812341234") == "138****1234"
    assert mask_name("张三丰") == "张**"
    assert mask_name("Li") == "L*"
    assert mask_name("张") == "*"
    assert mask_bank_account("6222021234567890123") == "**** 0123"
    assert mask_bank_account("6222 0212 3456 7890 123") == "**** 0123"
    assert mask_email("alice@example.com") == "a***@example.com"


@pytest.mark.parametrize(
    ("masker", "value", "expected"),
    [
        (mask_mobile, "1381", "****"),
        (mask_mobile, "1381234123", "**********"),
        (mask_mobile, "", ""),
        (mask_id_number, "110105491231002", "*" * 15),
        (mask_id_number, "", ""),
        (mask_name, "", ""),
        (mask_bank_account, "0123", "****"),
        (mask_bank_account, "", "****"),
        (mask_email, "a@example.com", "***@example.com"),
        (mask_email, "not-an-email", "************"),
        (mask_email, "@example.com", "************"),
        (mask_email, "", ""),
    ],
)
def test_short_or_malformed_input_is_hidden(masker: object, value: str, expected: str) -> None:
    assert callable(masker)
    assert masker(value) == expected


@given(
    st.text(alphabet="0123456789", min_size=6, max_size=6),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)),
    st.integers(min_value=0, max_value=999),
)
def test_id_number_mask_hides_birth_date_and_sequence(area: str, birth: date, seq: int) -> None:
    number = make_id_number(area, birth, seq)
    masked = mask_id_number(number)
    assert masked == number[:6] + "*" * 8 + number[-4:]


@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_mobile_mask_hides_the_middle_four(number: str) -> None:
    masked = mask_mobile(number)
    assert len(masked) == 11
    assert masked[3:7] == "****"
    assert masked[:3] + masked[7:] == number[:3] + number[7:]


@given(st.text().filter(lambda s: "*" not in s))
def test_masks_never_show_more_than_they_hide(value: str) -> None:
    stripped = value.strip()
    for masker in (mask_mobile, mask_id_number, mask_name):
        masked = masker(value)
        assert len(masked) == len(stripped)
        shown = len(masked) - masked.count("*")
        hidden = masked.count("*")
        # Well-formed values show at most 7 of 11 (mobile); short ones show nothing.
        assert shown <= 2 * hidden


@given(st.text(min_size=1).filter(lambda s: s.strip() == s and s != ""))
def test_name_mask_keeps_only_the_first_character(name: str) -> None:
    masked = mask_name(name)
    assert len(masked) == len(name)
    assert masked[1:] == "*" * (len(name) - 1)
    assert masked[0] == (name[0] if len(name) > 1 else "*")


@given(digits.filter(lambda s: len(s) >= 8))
def test_bank_account_shows_only_last_four(account: str) -> None:
    assert mask_bank_account(account) == "**** " + account[-4:]


@given(st.from_regex(r"[a-z0-9._]{2,20}", fullmatch=True), st.sampled_from(["qq.com", "a.cn"]))
def test_email_mask_hides_all_but_first_character(local: str, domain: str) -> None:
    masked = mask_email(f"{local}@{domain}")
    assert masked == f"{local[0]}***@{domain}"
    assert local[1:] not in masked.split("@")[0][1:]
