from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covernet.core import clock
from covernet.core.cn_identity import (
    IdCardInfo,
    InvalidIdNumber,
    InvalidMobile,
    age_on,
    check_character,
    is_valid_id_number,
    make_id_number,
    normalize_mobile,
    parse_id_number,
)

TODAY = date(2024, 6, 15)
EXAMPLE = "11010519491231002X"

areas = st.text(alphabet="0123456789", min_size=6, max_size=6)
births = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
sequences = st.integers(min_value=0, max_value=999)


def test_known_example_is_valid_female_born_1949_12_31() -> None:
    info = parse_id_number(EXAMPLE, today=TODAY)
    assert info == IdCardInfo(
        number=EXAMPLE, area_code="110105", birth_date=date(1949, 12, 31), sex="F"
    )
    assert check_character(EXAMPLE[:17]) == "X"
    assert is_valid_id_number(EXAMPLE)


def test_lower_case_x_and_whitespace_are_normalised() -> None:
    assert parse_id_number(" 11010519491231002x\n", today=TODAY).number == EXAMPLE


@given(areas, births, sequences)
def test_built_numbers_parse_back(area: str, birth: date, sequence: int) -> None:
    number = make_id_number(area, birth, sequence)
    info = parse_id_number(number, today=TODAY)
    assert info.number == number
    assert info.area_code == area
    assert info.birth_date == birth
    assert info.sex == ("M" if sequence % 2 else "F")


@given(areas, births, sequences, st.data())
def test_changing_any_single_character_invalidates(
    area: str, birth: date, sequence: int, data: st.DataObject
) -> None:
    number = make_id_number(area, birth, sequence)
    position = data.draw(st.integers(min_value=0, max_value=17))
    replacement = data.draw(st.sampled_from("0123456789X").filter(lambda c: c != number[position]))
    changed = number[:position] + replacement + number[position + 1 :]
    with pytest.raises(InvalidIdNumber) as caught:
        parse_id_number(changed, today=TODAY)
    assert caught.value.code == "invalid_id_number"


def _error(value: str, **kwargs: str) -> InvalidIdNumber:
    with pytest.raises(InvalidIdNumber) as caught:
        parse_id_number(value, today=TODAY, **kwargs)
    assert caught.value.status == 400
    return caught.value


def _with_check(first17: str) -> str:
    return first17 + check_character(first17)


@pytest.mark.parametrize("birth", ["19990230", "19991301", "19990000", "20230229"])
def test_impossible_birth_dates_are_rejected(birth: str) -> None:
    error = _error(_with_check(f"110105{birth}123"))
    assert error.code == "invalid_id_number"
    assert "impossible birth date" in error.message
    assert error.detail == {"field": "id_number"}


def test_leap_day_birth_is_accepted() -> None:
    assert parse_id_number(_with_check("11010520000229123"), today=TODAY).birth_date == date(
        2000, 2, 29
    )


def test_future_and_pre_1900_births_are_rejected() -> None:
    tomorrow = TODAY + timedelta(days=1)
    assert "future" in _error(make_id_number("110105", tomorrow, 1)).message
    assert parse_id_number(make_id_number("110105", TODAY, 1), today=TODAY).birth_date == TODAY
    assert "1900" in _error(_with_check("11010518991231123")).message


def test_default_today_comes_from_the_clock() -> None:
    number = make_id_number("110105", date(2030, 1, 1), 5)
    with clock.frozen(datetime(2029, 12, 31, 12, tzinfo=UTC)):
        assert not is_valid_id_number(number)
    with clock.frozen(datetime(2030, 1, 1, 12, tzinfo=UTC)):
        assert is_valid_id_number(number)


def test_wrong_check_character_message_does_not_reveal_expected_value() -> None:
    error = _error("110105194912310021", field="insured_id")
    assert error.message == "ID number check character does not match"
    assert error.detail == {"field": "insured_id"}
    assert "X" not in error.message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("110105491231002", "15-digit"),
        ("", "18 characters"),
        ("11010519491231002", "18 characters"),
        ("11010519491231002X1", "18 characters"),
        ("1101051949123100X2", "18 characters"),
        ("１１０１０５１９４９１２３１００２X", "18 characters"),  # full-width digits
    ],
)
def test_malformed_numbers(value: str, fragment: str) -> None:
    error = _error(value)
    assert fragment in error.message
    assert value.strip() == "" or value not in error.message


@pytest.mark.parametrize(
    "value",
    ["13812341234", "+8613812341234", "008613812341234", "138 1234 1234", "+86 138-1234-1234"],
)
def test_mobile_variants_normalise(value: str) -> None:
    assert normalize_mobile(value) == "13812341234"


@pytest.mark.parametrize(
    "value", ["138123412345", "23812341234", "12812341234", "1381234123", "", "+8513812341234"]
)
def test_bad_mobiles_are_rejected(value: str) -> None:
    with pytest.raises(InvalidMobile) as caught:
        normalize_mobile(value, field="contact_mobile")
    assert caught.value.code == "invalid_mobile"
    assert caught.value.detail == {"field": "contact_mobile"}


@given(st.sampled_from("3456789"), st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_any_mainland_mobile_normalises(second: str, rest: str) -> None:
    number = f"1{second}{rest}"
    assert normalize_mobile(f"+86 {number[:3]}-{number[3:7]}-{number[7:]}") == number


def test_age_on_boundaries() -> None:
    birth = date(1990, 6, 15)
    assert age_on(birth, date(2020, 6, 14)) == 29
    assert age_on(birth, date(2020, 6, 15)) == 30
    assert age_on(birth, birth) == 0
    with pytest.raises(ValueError):
        age_on(birth, date(1990, 6, 14))


def test_age_on_leap_day_birth() -> None:
    birth = date(2000, 2, 29)
    assert age_on(birth, date(2001, 2, 28)) == 0
    assert age_on(birth, date(2001, 3, 1)) == 1
    assert age_on(birth, date(2004, 2, 28)) == 3
    assert age_on(birth, date(2004, 2, 29)) == 4


@given(births, st.integers(min_value=0, max_value=120))
def test_age_on_the_birthday_equals_the_year_difference(birth: date, years: int) -> None:
    year = birth.year + years
    try:
        birthday = birth.replace(year=year)
    except ValueError:  # 29 February in a common year: the age goes up on 1 March
        birthday = date(year, 3, 1)
    assert age_on(birth, birthday) == years
    if birthday > birth:
        assert age_on(birth, birthday - timedelta(days=1)) == years - 1


def test_make_id_number_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        make_id_number("11010", date(1990, 1, 1), 1)
    with pytest.raises(ValueError):
        make_id_number("110105", date(1990, 1, 1), 1000)
    with pytest.raises(ValueError):
        make_id_number("110105", date(1899, 12, 31), 1)
