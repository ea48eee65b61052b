"""Instant underwriting (R12, R16) and suitability (R9): pure functions.

:func:`decide` takes everything it needs as arguments — the product, the insured's age
on the effective date, the health answers, what the insured already holds — and returns
accept, decline (with a reason code) or refer (a human decides).  :func:`suitability`
lists the warnings a customer must see before going on (R9).  No database, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from covernet.catalog.spec import Kind, Line, Product
from covernet.core.errors import ValidationFailed

Outcome = Literal["accept", "decline", "refer"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Accumulation(_Model):
    refer_above_fen: int = Field(ge=0)
    max_fen: int = Field(ge=1)

    @model_validator(mode="after")
    def _order(self) -> Accumulation:
        if self.refer_above_fen > self.max_fen:
            raise ValueError("refer_above_fen must not exceed max_fen")
        return self


class Gifts(_Model):
    max_in_force_per_person: int = Field(ge=1)
    max_premium_fen: int = Field(ge=1, le=10_000, description="R12: at most 100 yuan")


class Limits(_Model):
    version: int = Field(ge=1)
    accumulation: dict[Line, Accumulation] = Field(default_factory=dict)
    gifts: Gifts


def load_limits(path: Path | str) -> Limits:
    try:
        return Limits.model_validate(yaml.safe_load(Path(path).read_text("utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ValidationFailed(f"{path}: {exc}", code="bad_underwriting_rules") from exc


@dataclass(frozen=True)
class Holding:
    """A policy the insured already holds in force."""

    product_code: str
    line: Line
    kind: Kind
    sum_insured_fen: int
    gifted: bool = False


@dataclass(frozen=True)
class Case:
    product: Product
    plan_code: str
    sum_insured_fen: int
    premium_fen: int
    age: int | None  # 周岁 on the effective date
    occupation_class: int
    health_answers: Mapping[str, bool]
    holdings: Sequence[Holding] = ()
    gifted: bool = False


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str | None = None  # a stable code for decline / refer
    detail: dict[str, object] = field(default_factory=dict)


ACCEPT = Decision("accept")


def decide(case: Case, limits: Limits) -> Decision:
    """Eligibility, then health answers, then accumulation limits (the first that says
    decline wins; a referral is kept while later rules may still decline)."""
    product = case.product
    rules = product.eligibility
    if case.age is not None and not rules.min_age <= case.age <= rules.max_age:
        return Decision("decline", "age_out_of_range", {"age": case.age})
    if case.occupation_class not in rules.occupation_classes:
        return Decision("decline", "occupation_not_covered", {"class": case.occupation_class})
    referral: Decision | None = None
    for question in product.health_questions:
        if case.health_answers.get(question.code):
            if question.on_yes == "decline":
                return Decision("decline", "health_declined", {"question": question.code})
            referral = referral or Decision("refer", "health_review", {"question": question.code})
    if case.gifted:
        gifts = [h for h in case.holdings if h.gifted]
        if len(gifts) >= limits.gifts.max_in_force_per_person:
            return Decision("decline", "gift_limit_reached", {"in_force": len(gifts)})
        if case.premium_fen > limits.gifts.max_premium_fen:
            return Decision("decline", "gift_premium_too_high", {"premium_fen": case.premium_fen})
    limit = limits.accumulation.get(product.line)
    if limit is not None:
        held = sum(h.sum_insured_fen for h in case.holdings if h.line is product.line)
        total = held + case.sum_insured_fen
        if total > limit.max_fen:
            return Decision(
                "decline",
                "accumulation_exceeded",
                {"line": product.line.value, "total_fen": total, "max_fen": limit.max_fen},
            )
        if total > limit.refer_above_fen:
            referral = referral or Decision(
                "refer",
                "accumulation_review",
                {"line": product.line.value, "total_fen": total},
            )
    return referral or ACCEPT


# Suitability (R9) -----------------------------------------------------------------------

# A regular premium above this on a long-term product asks the customer to confirm it is
# affordable (R9); 60 and over buying long-term life cover is told about recording (R15).
HIGH_PREMIUM_FEN = 20_000_00
SENIOR_AGE = 60


def suitability(
    product: Product,
    *,
    age: int | None,
    premium_fen: int,
    long_term: bool,
    holdings: Sequence[Holding],
) -> list[str]:
    """Warning codes to show before the customer goes on (each has a text in the pages)."""
    warnings = []
    if product.line is Line.medical and any(h.line is Line.medical for h in holdings):
        warnings.append("duplicate_indemnity")  # medical cover indemnifies only once
    if long_term and premium_fen >= HIGH_PREMIUM_FEN:
        warnings.append("affordability")
    if long_term and age is not None and age >= SENIOR_AGE and product.line is Line.life:
        warnings.append("senior_long_term")
    if product.uncertain_benefits:
        warnings.append("uncertain_benefits")
    return warnings
