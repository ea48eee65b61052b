"""Fraud signals (flagged for a human, never an automatic decline): pure.

- ``soon_after_start``: the incident is within ``SOON_DAYS`` of the cover's start;
- ``repeat_insured``: the same insured person claimed ``REPEAT_COUNT`` or more times in
  the last year (across policies);
- ``repeat_device`` / ``repeat_payee``: the same device or payee account was used by
  claims of other customers;
- ``duplicate_document``: a document identical (by hash) to one of another claim.
"""

from __future__ import annotations

from datetime import date

SOON_DAYS = 30
REPEAT_COUNT = 3
SIGNALS = (
    "soon_after_start",
    "repeat_insured",
    "repeat_device",
    "repeat_payee",
    "duplicate_document",
)


def at_filing(
    *,
    incident: date,
    effective: date,
    insured_claims_last_year: int,
    device_other_customers: int,
    payee_other_customers: int,
) -> list[str]:
    flags = []
    if (incident - effective).days < SOON_DAYS:
        flags.append("soon_after_start")
    if insured_claims_last_year + 1 >= REPEAT_COUNT:
        flags.append("repeat_insured")
    if device_other_customers:
        flags.append("repeat_device")
    if payee_other_customers:
        flags.append("repeat_payee")
    return flags
