"""The product declaration language: what a YAML file under ``catalog/`` may say.

Everything here is pure data with validation; no database access.  A product that
loads is internally consistent: its premium tables cover every eligible age without
overlap, its health questions are specific (R6), short-term health products say
"不保证续保" (R8), long-term life and health products have a 犹豫期 of at least the
statutory default (R17) and a 停售 date is never earlier than its notice (R20).
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from covernet.core.i18n_text import I18nText
from covernet.core.regions import PROVINCES

Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{1,63}$")]
Fen = Annotated[int, Field(ge=0)]

# R17: individual life/health policies over one year get at least this many days.
STATUTORY_COOLING_OFF_DAYS = 15
# R12: gifted cover is accident or health only, ≤ 1 year, ≤ 100 yuan per person.
GIFT_MAX_PREMIUM_FEN = 100_00
NOT_GUARANTEED_RENEWAL = "不保证续保"

# R6: health questions must be specific; these catch-all phrasings are refused.
CATCH_ALL_PATTERNS = (
    r"其[他它](任何)?的?(疾病|异常|症状|病症|情况|问题|不适|健康)",
    r"任何(疾病|异常|症状|不适|情况)",
    r"(以外|之外)的?(疾病|异常|症状|情况)",
    r"未(列明|列出|提及|列举)",
    r"(有无|是否有|有没有|任何)(身体)?不适",
    r"身体(有无|是否)?不适",
    r"是否健康",
    r"身体(是否)?(健康|良好|正常)",
    r"\bany other\b",
    r"\bother (illness|disease|condition|symptom|health)",
    r"\bany (disease|illness|condition|symptom)",
    r"\bin good health\b",
)


class Line(StrEnum):
    accident = "accident"
    medical = "medical"
    critical_illness = "critical_illness"
    life = "life"
    property = "property"
    travel = "travel"


LINE_LABELS: dict[Line, I18nText] = {
    Line.accident: I18nText(zh="意外", en="Accident"),
    Line.medical: I18nText(zh="医疗", en="Medical"),
    Line.critical_illness: I18nText(zh="重疾", en="Critical illness"),
    Line.life: I18nText(zh="寿险", en="Life"),
    Line.property: I18nText(zh="财产", en="Property"),
    Line.travel: I18nText(zh="旅行", en="Travel"),
}

HEALTH_LINES = {Line.medical, Line.critical_illness}
LIFE_HEALTH_LINES = {Line.medical, Line.critical_illness, Line.life}


class Kind(StrEnum):
    protection = "protection"
    savings = "savings"
    participating = "participating"  # 分红
    universal = "universal"  # 万能
    unit_linked = "unit_linked"  # 投连


UNCERTAIN_BENEFIT_KINDS = {Kind.participating, Kind.universal, Kind.unit_linked}


class Gender(StrEnum):
    male = "M"
    female = "F"


class Frequency(StrEnum):
    single = "single"
    monthly = "monthly"
    annual = "annual"
    per_order = "per_order"


class SaleStatus(StrEnum):
    on_sale = "on_sale"
    suspended = "suspended"
    withdrawn = "withdrawn"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Insurer(_Model):
    code: Code
    name: I18nText
    legal_name: I18nText
    demo: bool = Field(
        description="A fictional insurer shipped for demonstration; pages mark it clearly."
    )
    service_phone: str
    complaint_channel: I18nText
    premium_account: str = Field(description="The insurer's dedicated premium account (R11).")


class Term(_Model):
    """How long cover lasts: exactly one of days, months, years, to_age, whole_life."""

    code: Code
    label: I18nText
    days: int | None = Field(default=None, ge=1)
    months: int | None = Field(default=None, ge=1)
    years: int | None = Field(default=None, ge=1)
    to_age: int | None = Field(default=None, ge=1, le=120)
    whole_life: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> Term:
        given = [
            self.days is not None,
            self.months is not None,
            self.years is not None,
            self.to_age is not None,
            self.whole_life,
        ]
        if sum(given) != 1:
            raise ValueError(
                f"term {self.code}: give exactly one of days, months, years, to_age, whole_life"
            )
        return self

    @property
    def over_one_year(self) -> bool:
        if self.days is not None:
            return self.days > 366
        if self.months is not None:
            return self.months > 12
        if self.years is not None:
            return self.years > 1
        return True


class Payment(_Model):
    """How premiums are paid: a frequency and, for regular premiums, for how many years."""

    code: Code
    label: I18nText
    frequency: Frequency
    years: int | None = Field(default=None, ge=1, le=100, description="缴费期 in years")


class PremiumRow(_Model):
    """One cell of a premium table.  Blank dimensions match anything."""

    age: tuple[int, int] | None = Field(default=None, description="inclusive age band [min, max]")
    gender: Gender | None = None
    term: Code | None = None
    payment: Code | None = None
    order_amount_max_fen: Fen | None = Field(
        default=None, description="per-order products: upper bound of the order amount band"
    )
    premium_fen: Annotated[int, Field(ge=1)]

    @model_validator(mode="after")
    def _band(self) -> PremiumRow:
        if self.age is not None and self.age[0] > self.age[1]:
            raise ValueError(f"age band {list(self.age)} is upside down")
        return self


class Coverage(_Model):
    code: Code
    name: I18nText
    sum_insured_fen: Fen
    description: I18nText | None = None
    deductible_fen: Fen = 0
    copay_percent: int = Field(default=0, ge=0, le=100)


class Plan(_Model):
    code: Code
    name: I18nText
    sum_insured_fen: Fen
    coverages: list[Coverage] = Field(min_length=1)
    premiums: list[PremiumRow] = Field(min_length=1)
    per_order: bool = Field(
        default=False, description="embedded micro-product priced per order (R: return shipping)"
    )

    @model_validator(mode="after")
    def _coverage_codes(self) -> Plan:
        codes = [c.code for c in self.coverages]
        if len(codes) != len(set(codes)):
            raise ValueError(f"plan {self.code}: coverage codes repeat")
        return self


class Eligibility(_Model):
    min_age: int = Field(default=0, ge=0, le=120)
    max_age: int = Field(default=100, ge=0, le=120)
    min_age_days: int = Field(default=0, ge=0, le=365, description="e.g. 出生满30天")
    occupation_classes: list[int] = Field(default_factory=lambda: [1, 2, 3, 4], min_length=1)

    @model_validator(mode="after")
    def _range(self) -> Eligibility:
        if self.min_age > self.max_age:
            raise ValueError("eligibility: min_age is above max_age")
        if any(c < 1 or c > 6 for c in self.occupation_classes):
            raise ValueError("eligibility: occupation classes run from 1 to 6")
        return self


class Renewal(_Model):
    guaranteed: bool
    years: int | None = Field(default=None, ge=1, description="guaranteed renewal period")
    note: I18nText


class Sale(_Model):
    status: SaleStatus = SaleStatus.on_sale
    stop_notice_date: date | None = None
    stop_date: date | None = Field(default=None, description="停售 date announced by the insurer")
    online_exclusive: bool = False
    regions: list[str] | Literal["all"] = "all"

    @model_validator(mode="after")
    def _dates(self) -> Sale:
        if (self.stop_date is None) != (self.stop_notice_date is None):
            raise ValueError("sale: a 停售 date needs the date of its notice, and vice versa")
        if self.stop_date and self.stop_notice_date and self.stop_date < self.stop_notice_date:
            raise ValueError("sale: the 停售 date is earlier than its notice (R20)")
        if self.regions != "all":
            unknown = [r for r in self.regions if r not in PROVINCES]
            if unknown:
                raise ValueError(f"sale: unknown region codes {unknown}")
        return self


class CashValueRow(_Model):
    policy_year: int = Field(ge=1)
    value_fen: Fen


class CashValues(_Model):
    """Illustrative cash values for a reference insured (R5, R17)."""

    basis: I18nText
    rows: list[CashValueRow] = Field(min_length=1)
    # The reference insured's premiums, so pages can set cash values against premiums paid.
    annual_premium_fen: Annotated[int, Field(ge=1)] | None = None
    payment_years: int | None = Field(default=None, ge=1, le=100)

    @model_validator(mode="after")
    def _years(self) -> CashValues:
        years = [r.policy_year for r in self.rows]
        if years != sorted(set(years)):
            raise ValueError("cash values: policy years must increase without repeats")
        if (self.annual_premium_fen is None) != (self.payment_years is None):
            raise ValueError("cash values: give the annual premium and the payment years together")
        return self

    def premiums_paid(self, policy_year: int) -> int | None:
        """Premiums the reference insured has paid by the end of ``policy_year``."""
        if self.annual_premium_fen is None or self.payment_years is None:
            return None
        return self.annual_premium_fen * min(policy_year, self.payment_years)


class Surrender(_Model):
    conditions: I18nText
    processing_days: int = Field(ge=1, le=30, description="refund within 30 days (R18)")
    documents: list[I18nText] = Field(default_factory=list)


class HealthQuestion(_Model):
    code: Code
    text: I18nText
    on_yes: Literal["decline", "refer"] = Field(
        default="decline", description="instant decision when the answer is yes (R16)"
    )

    @model_validator(mode="after")
    def _specific(self) -> HealthQuestion:
        for text in (self.text.zh, self.text.en or ""):
            for pattern in CATCH_ALL_PATTERNS:
                if re.search(pattern, text, flags=re.IGNORECASE):
                    raise ValueError(
                        f"health question {self.code} is a catch-all ('{text}'); "
                        "ask about specific conditions (R6)"
                    )
        return self


class Terms(_Model):
    summary: I18nText
    clauses: list[I18nText] = Field(default_factory=list)
    exclusions: list[I18nText] = Field(min_length=1)
    claims_procedure: I18nText


class Product(_Model):
    code: Code
    insurer: Code
    line: Line
    kind: Kind = Kind.protection
    name: I18nText
    tagline: I18nText
    highlights: list[I18nText] = Field(min_length=1, max_length=6)
    terms_options: list[Term] = Field(min_length=1)
    payment_options: list[Payment] = Field(min_length=1)
    plans: list[Plan] = Field(min_length=1)
    effective_after_days: int = Field(default=1, ge=0, le=30)
    waiting_period_days: int = Field(default=0, ge=0, le=365)
    cooling_off_days: int = Field(default=0, ge=0, le=60, description="犹豫期")
    cooling_off_fee_fen: Fen = Field(default=0, le=10_00, description="≤ 10 yuan (R17)")
    grace_period_days: int = Field(default=0, ge=0, le=90)
    renewal: Renewal
    eligibility: Eligibility = Field(default_factory=Eligibility)
    sale: Sale = Field(default_factory=Sale)
    cash_values: CashValues | None = None
    surrender: Surrender
    health_questions: list[HealthQuestion] = Field(default_factory=list)
    terms: Terms
    extra_disclosures: list[I18nText] = Field(default_factory=list)
    giftable: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Product:
        problems: list[str] = []
        term_codes = [t.code for t in self.terms_options]
        payment_codes = [p.code for p in self.payment_options]
        plan_codes = [p.code for p in self.plans]
        for label, codes in (
            ("term", term_codes),
            ("payment", payment_codes),
            ("plan", plan_codes),
        ):
            if len(codes) != len(set(codes)):
                problems.append(f"{label} codes repeat")
        if len({q.code for q in self.health_questions}) != len(self.health_questions):
            problems.append("health question codes repeat")
        long_term = any(t.over_one_year for t in self.terms_options)
        if (
            long_term
            and self.line in LIFE_HEALTH_LINES
            and self.cooling_off_days < STATUTORY_COOLING_OFF_DAYS
        ):
            problems.append(
                f"a life/health product over one year needs a 犹豫期 of at least "
                f"{STATUTORY_COOLING_OFF_DAYS} days (R17)"
            )
        if (
            self.line in HEALTH_LINES
            and not long_term
            and (self.renewal.guaranteed or NOT_GUARANTEED_RENEWAL not in self.renewal.note.zh)
        ):
            problems.append(f"short-term health cover must say '{NOT_GUARANTEED_RENEWAL}' (R8)")
        if self.kind in UNCERTAIN_BENEFIT_KINDS and self.cash_values is None:
            problems.append(f"a {self.kind.value} product must publish its cash values")
        if self.giftable:
            problems.extend(self._gift_problems())
        problems.extend(self._term_problems())
        for plan in self.plans:
            problems.extend(self._table_problems(plan))
        if problems:
            raise ValueError(f"product {self.code}: " + "; ".join(problems))
        return self

    def _gift_problems(self) -> list[str]:
        out = []
        if self.line not in (Line.accident, Line.medical):
            out.append("only accident or health cover may be gifted (R12)")
        if any(t.over_one_year for t in self.terms_options):
            out.append("gifted cover lasts at most one year (R12)")
        for plan in self.plans:
            for row in plan.premiums:
                for term in self.terms_options:
                    for payment in self.payment_options:
                        if row.term not in (None, term.code) or row.payment not in (
                            None,
                            payment.code,
                        ):
                            continue
                        total = row.premium_fen * payments_in(term, payment)
                        if total > GIFT_MAX_PREMIUM_FEN:
                            out.append(
                                f"gifted cover costs at most 100 yuan per person for the whole "
                                f"gift (R12): plan {plan.code} costs {total} fen over {term.code}"
                            )
                            return out
        return out

    def _term_problems(self) -> list[str]:
        """Cover must outlast the oldest insured, and premiums may not outlast cover."""
        out = []
        max_age = self.eligibility.max_age
        for term in self.terms_options:
            if term.to_age is not None and term.to_age <= max_age:
                out.append(
                    f"term {term.code}: cover to age {term.to_age} ends before the oldest "
                    f"eligible insured ({max_age}) is covered"
                )
            for payment in self.payment_options:
                if payment.years is None or not any(
                    self.offers(term.code, payment.code, plan) for plan in self.plans
                ):
                    continue
                if term.years is not None and payment.years > term.years:
                    out.append(
                        f"payment {payment.code}: {payment.years} years of premiums outlast "
                        f"the {term.years}-year term {term.code}"
                    )
                short_months = (
                    term.months
                    if term.months is not None
                    else -(-term.days // 30)
                    if term.days is not None
                    else None
                )
                if short_months is not None and payment.years * 12 > short_months:
                    out.append(
                        f"payment {payment.code}: {payment.years} years of premiums outlast "
                        f"the short term {term.code}"
                    )
                if term.to_age is not None and max_age + payment.years > term.to_age:
                    out.append(
                        f"payment {payment.code}: an insured aged {max_age} would pay premiums "
                        f"after cover under term {term.code} ends at {term.to_age}"
                    )
        return out

    def _per_order_problems(self, plan: Plan) -> list[str]:
        """Per-order bands: distinct upper bounds and one open-ended band per term/payment."""
        out = []
        if any(r.age is not None or r.gender is not None for r in plan.premiums):
            out.append(f"plan {plan.code}: per-order premiums may not depend on age or gender")
        combos: dict[tuple[str | None, str | None], list[int | None]] = {}
        for row in plan.premiums:
            combos.setdefault((row.term, row.payment), []).append(row.order_amount_max_fen)
        for (term, payment), bounds in combos.items():
            where = f"{term or 'any term'}, {payment or 'any payment'}"
            if len(bounds) != len(set(bounds)):
                out.append(f"plan {plan.code}: order amount bands repeat ({where})")
            if None not in bounds:
                out.append(
                    f"plan {plan.code}: the last order amount band must be open-ended ({where})"
                )
        return out

    def _table_problems(self, plan: Plan) -> list[str]:
        """Every (gender, term, payment) combination must price every eligible age once."""
        out: list[str] = []
        terms = {t.code for t in self.terms_options}
        payments = {p.code: p for p in self.payment_options}
        for row in plan.premiums:
            if row.term is not None and row.term not in terms:
                out.append(f"plan {plan.code}: premium row names unknown term {row.term}")
            if row.payment is not None and row.payment not in payments:
                out.append(f"plan {plan.code}: premium row names unknown payment {row.payment}")
        per_order_payment = any(p.frequency is Frequency.per_order for p in self.payment_options)
        if plan.per_order != per_order_payment:
            out.append(f"plan {plan.code}: per-order plans go with a per_order payment option")
        if plan.per_order and not out:
            out.extend(self._per_order_problems(plan))
        if not plan.per_order and any(r.order_amount_max_fen is not None for r in plan.premiums):
            out.append(f"plan {plan.code}: order amount bands belong to per-order plans only")
        if out or plan.per_order:
            return out
        if len({p.frequency for p in self.payment_options}) > 1 and any(
            r.payment is None for r in plan.premiums
        ):
            return [
                f"plan {plan.code}: payment options differ in frequency, so every premium row "
                "names its payment"
            ]
        elig = self.eligibility
        for row in plan.premiums:
            if row.age is not None and (row.age[1] < elig.min_age or row.age[0] > elig.max_age):
                out.append(
                    f"plan {plan.code}: the premium row for ages {list(row.age)} never applies "
                    f"(eligible ages {elig.min_age}–{elig.max_age})"
                )
        if out:
            return out
        for gender in Gender:
            for term in self.terms_options:
                for payment in self.payment_options:
                    for age in range(self.eligibility.min_age, self.eligibility.max_age + 1):
                        hits = [
                            r
                            for r in plan.premiums
                            if row_matches(
                                r, age=age, gender=gender, term=term.code, payment=payment.code
                            )
                        ]
                        if len(hits) > 1:
                            out.append(
                                f"plan {plan.code}: {len(hits)} premium rows match age {age}, "
                                f"{gender.value}, {term.code}, {payment.code}"
                            )
                            return out
                        if not hits and self.offers(term.code, payment.code, plan):
                            out.append(
                                f"plan {plan.code}: no premium for age {age}, {gender.value}, "
                                f"{term.code}, {payment.code}"
                            )
                            return out
        return out

    def offers(self, term: str, payment: str, plan: Plan) -> bool:
        """A term/payment pair is offered when at least one row of the plan prices it."""
        return any(
            (r.term in (None, term)) and (r.payment in (None, payment)) for r in plan.premiums
        )

    # Convenience look-ups -------------------------------------------------------

    def plan(self, code: str) -> Plan | None:
        return next((p for p in self.plans if p.code == code), None)

    def term(self, code: str) -> Term | None:
        return next((t for t in self.terms_options if t.code == code), None)

    def payment(self, code: str) -> Payment | None:
        return next((p for p in self.payment_options if p.code == code), None)

    @property
    def uncertain_benefits(self) -> bool:
        return self.kind in UNCERTAIN_BENEFIT_KINDS

    @property
    def short_term(self) -> bool:
        return not any(t.over_one_year for t in self.terms_options)


def payments_in(term: Term, payment: Payment) -> int:
    """How many premiums are paid over one term with this payment option."""
    if payment.frequency is Frequency.monthly:
        if term.months is not None:
            return term.months
        if term.years is not None:
            return 12 * term.years
        if term.days is not None:
            return -(-term.days // 30)  # a month's premium for every started 30 days
        return 1
    if payment.frequency is Frequency.annual and term.years is not None:
        return term.years if payment.years is None else min(term.years, payment.years)
    return 1


def row_matches(
    row: PremiumRow,
    *,
    age: int | None,
    gender: Gender | None,
    term: str,
    payment: str,
    order_amount_fen: int | None = None,
) -> bool:
    """Whether a premium row prices this insured.  Blank row dimensions match anything."""
    if row.age is not None and (age is None or not row.age[0] <= age <= row.age[1]):
        return False
    if row.gender is not None and row.gender != gender:
        return False
    if row.term is not None and row.term != term:
        return False
    if row.payment is not None and row.payment != payment:
        return False
    return not (
        row.order_amount_max_fen is not None
        and (order_amount_fen is None or order_amount_fen > row.order_amount_max_fen)
    )


class Catalog(_Model):
    """A whole catalog: insurers and the products they offer."""

    insurers: list[Insurer]
    products: list[Product]

    @model_validator(mode="after")
    def _references(self) -> Catalog:
        insurer_codes = [i.code for i in self.insurers]
        product_codes = [p.code for p in self.products]
        problems = []
        if len(insurer_codes) != len(set(insurer_codes)):
            problems.append("insurer codes repeat")
        if len(product_codes) != len(set(product_codes)):
            problems.append("product codes repeat")
        for product in self.products:
            if product.insurer not in insurer_codes:
                problems.append(f"product {product.code} names unknown insurer {product.insurer}")
        if problems:
            raise ValueError("; ".join(problems))
        return self
