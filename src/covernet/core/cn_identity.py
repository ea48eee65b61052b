"""Mainland China identity numbers (居民身份证号, GB 11643-1999) and mobile numbers.

An 18-character ID number is ``AAAAAA YYYYMMDD SSS C``: a 6-digit area code, the
birth date, a 3-digit sequence whose last digit is odd for men and even for women,
and an ISO 7064 MOD 11-2 check character (``0``-``9`` or ``X``).

Error messages never echo the number itself: they are shown to users and may be
logged, and an ID number is personal data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from covernet.core import clock
from covernet.core.errors import ValidationFailed

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_ID_PATTERN = re.compile(r"[0-9]{17}[0-9X]")
_OLD_ID_PATTERN = re.compile(r"[0-9]{15}")
_MOBILE_PATTERN = re.compile(r"(?:\+86|0086)?(1[3-9][0-9]{9})")
_MOBILE_SEPARATORS = re.compile(r"[\s\-]")
MIN_BIRTH_YEAR = 1900


class InvalidIdNumber(ValidationFailed):
    code = "invalid_id_number"


class InvalidMobile(ValidationFailed):
    code = "invalid_mobile"


@dataclass(frozen=True)
class IdCardInfo:
    """What an 18-character ID number tells us. ``number`` is normalised."""

    number: str
    area_code: str
    birth_date: date
    sex: Literal["M", "F"]


def check_character(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("check_character needs exactly 17 ASCII digits")
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def parse_id_number(
    value: str, *, field: str = "id_number", today: date | None = None
) -> IdCardInfo:
    """Validate an 18-character ID number and decode it.

    Surrounding whitespace is ignored and a lower-case ``x`` is accepted.  Raises
    :class:`InvalidIdNumber` (``detail={"field": field}``) for a wrong length or
    format, a 15-digit first-generation number, an impossible birth date, a birth
    date before 1900 or after ``today`` (default: today in Beijing), or a check
    character that does not match.
    """

    def fail(message: str) -> InvalidIdNumber:
        return InvalidIdNumber(message, detail={"field": field})

    number = value.strip().upper()
    if _OLD_ID_PATTERN.fullmatch(number):
        raise fail(
            "15-digit (first-generation) ID numbers are not accepted; "
            "enter the 18-character ID number"
        )
    if not _ID_PATTERN.fullmatch(number):
        raise fail("ID number must be 18 characters: 17 digits followed by a digit or X")
    try:
        birth = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise fail("ID number contains an impossible birth date") from None
    if birth.year < MIN_BIRTH_YEAR:
        raise fail(f"ID number birth date is before {MIN_BIRTH_YEAR}")
    if birth > (today if today is not None else clock.today()):
        raise fail("ID number birth date is in the future")
    if check_character(number[:17]) != number[17]:
        raise fail("ID number check character does not match")
    return IdCardInfo(
        number=number,
        area_code=number[:6],
        birth_date=birth,
        sex="M" if int(number[16]) % 2 else "F",
    )


def is_valid_id_number(value: str) -> bool:
    """True when :func:`parse_id_number` accepts ``value`` (as of today)."""
    try:
        parse_id_number(value)
    except InvalidIdNumber:
        return False
    return True


def normalize_mobile(value: str, *, field: str = "mobile") -> str:
    """Return the bare 11 digits of a mainland mobile number.

    Whitespace and hyphens are removed first; an optional ``+86`` or ``0086``
    prefix is accepted.  Raises :class:`InvalidMobile` otherwise.
    """
    match = _MOBILE_PATTERN.fullmatch(_MOBILE_SEPARATORS.sub("", value))
    if match is None:
        raise InvalidMobile(
            "mobile number must be 11 digits starting with 13-19, optionally prefixed by +86",
            detail={"field": field},
        )
    return match.group(1)


def age_on(birth_date: date, on: date) -> int:
    """Age in completed years (周岁) on ``on``.

    The age goes up on the birthday itself; for a 29 February birth it goes up on
    1 March in common years.
    """
    if on < birth_date:
        raise ValueError("age_on: the date is before the birth date")
    before_birthday = (on.month, on.day) < (birth_date.month, birth_date.day)
    return on.year - birth_date.year - int(before_birthday)


def make_id_number(area_code: str, birth_date: date, sequence: int) -> str:
    """Build a valid 18-character ID number (tests and demo data).

    ``sequence`` is 0..999; its last digit decides the sex (odd = male).
    """
    if len(area_code) != 6 or not area_code.isascii() or not area_code.isdigit():
        raise ValueError("area_code must be 6 ASCII digits")
    if not 0 <= sequence <= 999:
        raise ValueError("sequence must be between 0 and 999")
    if birth_date.year < MIN_BIRTH_YEAR:
        raise ValueError(f"birth_date must be in {MIN_BIRTH_YEAR} or later")
    first17 = f"{area_code}{birth_date:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)
