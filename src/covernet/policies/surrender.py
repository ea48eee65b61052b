"""What getting out of a policy pays (R17, R18): pure, no database, no clock.

- Inside the 犹豫期 (cooling-off period): the premium less the product's fee (≤ 10 yuan).
- Before cover starts: the whole premium.
- After: the cash value for products with a cash-value table — the table is for the
  product's reference insured, so it is scaled by this policy's annual premium, and in the
  first policy year it grows in proportion to the days elapsed — otherwise the unearned
  premium of the current premium period, pro rata to the days left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from covernet.catalog.pricing import add_months
from covernet.catalog.spec import Frequency, Product
from covernet.core.i18n_text import I18nText

Basis = Literal["cooling_off", "not_started", "cash_value", "unearned_premium"]


@dataclass(frozen=True)
class PolicyFacts:
    premium_fen: int  # per premium period
    frequency: Frequency
    effective_date: date
    end_date: date | None
    cooling_off_end: date | None


@dataclass(frozen=True)
class SurrenderQuote:
    basis: Basis
    amount_fen: int
    fee_fen: int
    processing_days: int
    conditions: I18nText
    documents: tuple[I18nText, ...]


def _period_end(facts: PolicyFacts, on: date) -> tuple[date, date]:
    """The premium period ``on`` falls in: [start, end] (inclusive)."""
    start = facts.effective_date
    months = {Frequency.monthly: 1, Frequency.annual: 12}.get(facts.frequency)
    if months is None:  # single premium or per order: the whole term is one period
        return start, facts.end_date or on
    while True:
        following = add_months(start, months)
        if on < following or (facts.end_date is not None and following > facts.end_date):
            end = following.fromordinal(following.toordinal() - 1)
            return start, min(end, facts.end_date) if facts.end_date else end
        start = following


def _cash_value(product: Product, facts: PolicyFacts, on: date) -> int:
    table = product.cash_values
    assert table is not None
    years_done = 0
    while add_months(facts.effective_date, 12 * (years_done + 1)) <= on:
        years_done += 1
    values = {row.policy_year: row.value_fen for row in table.rows}
    reference = table.annual_premium_fen or facts.premium_fen
    annual = facts.premium_fen * (12 if facts.frequency is Frequency.monthly else 1)
    if years_done == 0:
        year_start = facts.effective_date
        elapsed = (on - year_start).days
        first = values.get(1, 0)
        base = first * elapsed // max(1, (add_months(year_start, 12) - year_start).days)
    else:
        known = [y for y in values if y <= years_done]
        base = values[max(known)] if known else 0
    return base * annual // reference


def surrender_quote(product: Product, facts: PolicyFacts, on: date) -> SurrenderQuote:
    """What the customer gets back if they leave on ``on``."""

    def quote(basis: Basis, amount_fen: int, fee_fen: int = 0) -> SurrenderQuote:
        return SurrenderQuote(
            basis,
            amount_fen,
            fee_fen,
            product.surrender.processing_days,
            product.surrender.conditions,
            tuple(product.surrender.documents),
        )

    if facts.cooling_off_end is not None and on <= facts.cooling_off_end:
        fee = min(product.cooling_off_fee_fen, facts.premium_fen)
        return quote("cooling_off", facts.premium_fen - fee, fee)
    if on < facts.effective_date:
        return quote("not_started", facts.premium_fen)
    if product.cash_values is not None:
        return quote("cash_value", _cash_value(product, facts, on))
    start, end = _period_end(facts, on)
    total = (end - start).days + 1
    left = max(0, (end - on).days)  # the day of surrender is covered
    return quote("unearned_premium", facts.premium_fen * left // total)
