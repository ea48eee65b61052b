"""Is a claim covered, and how much does it pay?  Pure: no database, no clock.

The claims service gathers the facts (the policy, the product at the policy's version,
what has been paid so far) and calls :func:`assess`; the answer is an
:class:`Assessment` with stable reason codes and every step of the amount, so a claim
page can show "how we got to ¥X" and a denial can give its reasons (R21).

Cover on the incident date
    Cover runs from ``effective_date`` to ``end_date`` inclusive (``None`` = whole
    life), as :func:`covernet.catalog.pricing.end_date` sets it.  A cancelled (犹豫期) or
    surrendered policy covers incidents up to and including its ``ended_on`` day (the
    day of surrender is covered, as the refund counts it); an expired policy covers up
    to ``ended_on`` or ``end_date``, whichever is earlier.  Whether a policy is in force
    is decided from the dates, not from today's status: a claim for an incident before
    a surrender is still assessed.

Waiting period
    ``waiting_period_end`` is the last day of the waiting period, inclusive (the
    e-policy says "至<date> 24时"); ``None`` means none (products without one, and
    renewals).  It applies to ``illness`` only: accidents are covered from the
    effective date, as the products' texts say, and ``event`` incidents (a delayed
    flight, a return) have none.

Causes
    Health, life and accident lines know only ``accident`` and ``illness``; ``event``
    belongs to travel and property lines (so nobody can side-step a waiting period by
    calling an illness an event).  Coverages named "accidental …" pay for accidents
    only (:data:`CAUSES_BY_COVERAGE`).

Kinds of coverage (:data:`KIND_BY_LINE`, overridden by :data:`KIND_BY_COVERAGE`)
    *Indemnity* reimburses costs: medical and property lines, and the travel
    coverages that reimburse costs (overseas-medical, emergency-evacuation).
    *Benefit* pays a fixed amount, or the share of it the claim asks for (a disability
    grade): accident, critical illness, life, and the rest of travel (flight delay,
    accidental death).  A coverage code means the same in every product.

Indemnity amounts (``amount_claimed_fen`` = the costs not paid by anyone else)
    1. *deductible*: the coverage's ``deductible_fen`` less what is already used.
       Medical deductibles are per policy year (medical-million: "年免赔额"), and
       amounts paid by social insurance or others count toward them — the caller adds
       those to ``deductible_used_fen`` and leaves them out of the amount claimed.
       Other deductibles are per event (travel-medical: "每次500元免赔额"), so
       ``deductible_used_fen`` is ignored for them (:data:`DEDUCTIBLE_BASIS_BY_LINE`).
    2. *co-pay*: the customer bears ``copay_percent``; the insurer pays
       ``floor(amount × (100 − copay_percent) / 100)`` — exact integer arithmetic, the
       fraction of a fen (< 1 fen) stays with the customer.
    3. *coverage limit*: ``sum_insured_fen`` less this policy year's payments on the
       coverage.
    4. *plan limit*: the spec has no field for shared limits, so the indemnity
       coverages of one plan share the plan's ``sum_insured_fen`` per policy year
       (medical-million: "与一般住院医疗保险金合计以50万元为限"); the plan's remaining
       aggregate is ``plan.sum_insured_fen`` less this year's payments on all of the
       plan's indemnity coverages.  Benefits never share it.

Benefit amounts (``amount_claimed_fen`` = the amount asked)
    Capped by what is left of the coverage over the whole policy, not per year: a
    critical-illness benefit is paid once and then "this benefit ends".  Each payment
    is at most ``sum_insured_fen``; a coverage that may pay several times has its count
    in :data:`PAYMENTS_ALLOWED` (ci-lifetime mild-illness: "累计最多3次"), its limit over
    the policy being ``sum_insured_fen × times``.  A coverage that ends once another
    has paid is in :data:`ENDS_WHEN_PAID` (ci-lifetime death after critical illness).
    Deductibles and co-pays apply to indemnity only (no shipped benefit declares one).

Policy years
    Year 1 starts on the effective date; year *n* starts on the (n−1)th anniversary.
    An anniversary that does not exist (29 Feb in a common year) falls on 1 March,
    matching :func:`covernet.catalog.pricing.end_date` (a one-year policy from 29 Feb
    2024 covers to 28 Feb 2025) and :func:`covernet.catalog.pricing.birthday`.  The
    caller passes the figures of the incident's policy year (see :func:`policy_year`).

Not decided here: exclusions, whether the documents prove the incident, the legal time
bar for claiming, fraud signals.  Those are the claims handler's and other modules'.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from covernet.catalog.spec import Coverage, Line, Plan, Product


class PolicyState(StrEnum):
    """The policy's status; the values are :class:`covernet.policies.models.PolicyStatus`'s."""

    in_force = "in_force"
    cancelled = "cancelled"
    surrendered = "surrendered"
    expired = "expired"


class Cause(StrEnum):
    accident = "accident"
    illness = "illness"
    event = "event"


class CoverageKind(StrEnum):
    indemnity = "indemnity"
    benefit = "benefit"


class DeductibleBasis(StrEnum):
    annual = "annual"  # per policy year, partly used by earlier claims
    per_event = "per_event"  # in full on every claim


class Reason(StrEnum):
    """Stable codes explaining a denial, a zero or a reduced amount."""

    not_in_force_on_incident = "not_in_force_on_incident"  # with one of the next four
    before_effective_date = "before_effective_date"
    after_end_date = "after_end_date"
    policy_cancelled_before_incident = "policy_cancelled_before_incident"
    policy_surrendered_before_incident = "policy_surrendered_before_incident"
    in_waiting_period = "in_waiting_period"
    unknown_coverage = "unknown_coverage"
    cause_not_covered = "cause_not_covered"
    coverage_ended = "coverage_ended"
    nothing_claimed = "nothing_claimed"
    nothing_payable_after_deductible = "nothing_payable_after_deductible"
    limit_exhausted = "limit_exhausted"  # a limit left nothing to pay
    capped_by_coverage_limit = "capped_by_coverage_limit"  # paid, but less
    capped_by_plan_limit = "capped_by_plan_limit"  # paid, but less


class StepCode(StrEnum):
    claimed = "claimed"
    deductible = "deductible"
    copay = "copay"
    coverage_limit = "coverage_limit"
    plan_limit = "plan_limit"
    not_covered = "not_covered"  # the whole amount, when the claim is not covered


# The rules as data ------------------------------------------------------------------

KIND_BY_LINE: Mapping[Line, CoverageKind] = {
    Line.medical: CoverageKind.indemnity,
    Line.property: CoverageKind.indemnity,
    Line.accident: CoverageKind.benefit,
    Line.critical_illness: CoverageKind.benefit,
    Line.life: CoverageKind.benefit,
    Line.travel: CoverageKind.benefit,
}
KIND_BY_COVERAGE: Mapping[str, CoverageKind] = {
    "overseas-medical": CoverageKind.indemnity,  # travel-medical: costs abroad
    "emergency-evacuation": CoverageKind.indemnity,  # travel-medical: "实报实销"
}
DEDUCTIBLE_BASIS_BY_LINE: Mapping[Line, DeductibleBasis] = {
    Line.medical: DeductibleBasis.annual,  # medical-million: "年免赔额1万元"
}
DEFAULT_DEDUCTIBLE_BASIS = DeductibleBasis.per_event  # travel-medical: "每次500元免赔额"
_BODILY = frozenset({Cause.accident, Cause.illness})
CAUSES_BY_LINE: Mapping[Line, frozenset[Cause]] = {
    Line.medical: _BODILY,
    Line.critical_illness: _BODILY,
    Line.life: _BODILY,
    Line.accident: _BODILY,  # sudden death is an illness
    Line.travel: frozenset(Cause),
    Line.property: frozenset(Cause),
}
CAUSES_BY_COVERAGE: Mapping[str, frozenset[Cause]] = {
    "accidental-death-disability": frozenset({Cause.accident}),
    "accidental-death": frozenset({Cause.accident}),
}
# (product code, coverage code) -> how many payments of sum_insured_fen the policy allows.
PAYMENTS_ALLOWED: Mapping[tuple[str, str], int] = {
    ("ci-lifetime", "mild-illness"): 3,
}
# (product code, coverage code) -> coverages whose payment ends it.
ENDS_WHEN_PAID: Mapping[tuple[str, str], frozenset[str]] = {
    ("ci-lifetime", "death"): frozenset({"critical-illness"}),
}


def coverage_kind(line: Line, coverage_code: str) -> CoverageKind:
    return KIND_BY_COVERAGE.get(coverage_code, KIND_BY_LINE[line])


def deductible_basis(line: Line) -> DeductibleBasis:
    return DEDUCTIBLE_BASIS_BY_LINE.get(line, DEFAULT_DEDUCTIBLE_BASIS)


def allowed_causes(line: Line, coverage_code: str) -> frozenset[Cause]:
    return CAUSES_BY_COVERAGE.get(coverage_code, CAUSES_BY_LINE[line])


def shares_plan_limit(product: Product, coverage: Coverage) -> bool:
    """Indemnity coverages of a plan share the plan's annual sum insured; benefits don't."""
    return coverage_kind(product.line, coverage.code) is CoverageKind.indemnity


# Policy years -----------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyYear:
    index: int  # 1 for the first year
    start: date
    end: date  # inclusive: the day before the next anniversary


def anniversary(effective_date: date, years: int) -> date:
    """The start of policy year ``years + 1``; a missing 29 Feb falls on 1 March."""
    year = effective_date.year + years
    if effective_date.month == 2 and effective_date.day == 29 and not calendar.isleap(year):
        return date(year, 3, 1)
    return effective_date.replace(year=year)


def policy_year(effective_date: date, on: date) -> PolicyYear:
    """The policy year ``on`` falls in; ValueError before the effective date."""
    if on < effective_date:
        raise ValueError(f"{on} is before the effective date {effective_date}")
    index = on.year - effective_date.year
    if anniversary(effective_date, index) > on:
        index -= 1
    start = anniversary(effective_date, index)
    return PolicyYear(index + 1, start, anniversary(effective_date, index + 1) - timedelta(1))


# Inputs and output --------------------------------------------------------------------


def _check_fen(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int of fen, got {value!r}")


@dataclass(frozen=True)
class PolicyTerms:
    product: Product  # the catalog product at the policy's version
    plan_code: str
    effective_date: date
    end_date: date | None  # last day of cover, inclusive; None = whole life
    waiting_period_end: date | None  # last day of the waiting period, inclusive
    status: PolicyState = PolicyState.in_force
    ended_on: date | None = None  # cancelled / surrendered / expired: the last day of cover

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", PolicyState(self.status))
        if self.product.plan(self.plan_code) is None:
            raise ValueError(f"product {self.product.code} has no plan {self.plan_code}")
        if self.end_date is not None and self.end_date < self.effective_date:
            raise ValueError("end_date is before effective_date")
        if (self.status is PolicyState.in_force) != (self.ended_on is None):
            raise ValueError("ended_on is given exactly when the policy is no longer in force")

    @property
    def plan(self) -> Plan:
        plan = self.product.plan(self.plan_code)
        assert plan is not None
        return plan


@dataclass(frozen=True)
class PaidSoFar:
    """Paid on this policy before this claim, in fen, by coverage code.

    ``this_year``: in the incident's policy year (indemnity limits, the plan's aggregate
    is their sum over the plan's indemnity coverages).  ``whole_policy``: since the policy
    began (benefit limits); for a policy of one year or less both are the same figures.
    """

    this_year: Mapping[str, int] = field(default_factory=dict)
    whole_policy: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, figures in (("this_year", self.this_year), ("whole_policy", self.whole_policy)):
            for code, fen in figures.items():
                _check_fen(fen, f"paid.{name}[{code!r}]")


@dataclass(frozen=True)
class ClaimFacts:
    coverage_code: str
    incident_date: date
    report_date: date
    cause: Cause
    amount_claimed_fen: int  # indemnity: the costs; benefit: the amount asked
    paid: PaidSoFar = field(default_factory=PaidSoFar)
    deductible_used_fen: int = 0  # this policy year, on this coverage (incl. others' payments)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cause", Cause(self.cause))
        _check_fen(self.amount_claimed_fen, "amount_claimed_fen")
        _check_fen(self.deductible_used_fen, "deductible_used_fen")
        if self.report_date < self.incident_date:
            raise ValueError("report_date is before incident_date")


@dataclass(frozen=True)
class Step:
    """One line of "how we got to ¥X".

    ``amount_fen`` is the running amount after the step and ``reduction_fen`` what it took
    off.  ``limit_fen`` is the figure the step applied: the deductible still to bear
    (deductible), the remaining limit (coverage_limit, plan_limit); ``percent`` is the
    customer's co-pay share (copay).
    """

    code: StepCode
    amount_fen: int
    reduction_fen: int = 0
    limit_fen: int | None = None
    percent: int | None = None


@dataclass(frozen=True)
class Assessment:
    covered: bool
    reasons: tuple[Reason, ...]
    kind: CoverageKind | None  # None when the coverage is unknown
    policy_year: PolicyYear | None  # None before the effective date
    claimed_fen: int
    after_deductible_fen: int
    after_copay_fen: int
    payable_fen: int
    steps: tuple[Step, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (dates as ISO strings), to keep with the claim."""
        year = self.policy_year
        return {
            "covered": self.covered,
            "reasons": [r.value for r in self.reasons],
            "kind": self.kind.value if self.kind else None,
            "policy_year": (
                None
                if year is None
                else {
                    "index": year.index,
                    "start": year.start.isoformat(),
                    "end": year.end.isoformat(),
                }
            ),
            "claimed_fen": self.claimed_fen,
            "after_deductible_fen": self.after_deductible_fen,
            "after_copay_fen": self.after_copay_fen,
            "payable_fen": self.payable_fen,
            "steps": [
                {
                    "code": s.code.value,
                    "amount_fen": s.amount_fen,
                    "reduction_fen": s.reduction_fen,
                    "limit_fen": s.limit_fen,
                    "percent": s.percent,
                }
                for s in self.steps
            ],
        }


# The assessment -----------------------------------------------------------------------


def _in_force_reasons(policy: PolicyTerms, on: date) -> list[Reason]:
    why: Reason | None = None
    if on < policy.effective_date:
        why = Reason.before_effective_date
    elif policy.end_date is not None and on > policy.end_date:
        why = Reason.after_end_date
    elif policy.ended_on is not None and on > policy.ended_on:
        why = {
            PolicyState.cancelled: Reason.policy_cancelled_before_incident,
            PolicyState.surrendered: Reason.policy_surrendered_before_incident,
        }.get(policy.status, Reason.after_end_date)
    return [] if why is None else [Reason.not_in_force_on_incident, why]


def _coverage_reasons(policy: PolicyTerms, claim: ClaimFacts, coverage: Coverage) -> list[Reason]:
    product = policy.product
    out = []
    if claim.cause not in allowed_causes(product.line, coverage.code):
        out.append(Reason.cause_not_covered)
    if (
        claim.cause is Cause.illness
        and policy.waiting_period_end is not None
        and claim.incident_date <= policy.waiting_period_end
    ):
        out.append(Reason.in_waiting_period)
    enders = ENDS_WHEN_PAID.get((product.code, coverage.code), frozenset())
    if any(claim.paid.whole_policy.get(code, 0) > 0 for code in enders):
        out.append(Reason.coverage_ended)
    return out


def _indemnity(
    policy: PolicyTerms, claim: ClaimFacts, coverage: Coverage
) -> tuple[list[Step], list[Reason]]:
    paid = claim.paid.this_year
    amount = claim.amount_claimed_fen
    steps = [Step(StepCode.claimed, amount)]
    reasons: list[Reason] = []

    if deductible_basis(policy.product.line) is DeductibleBasis.annual:
        to_bear = max(0, coverage.deductible_fen - claim.deductible_used_fen)
    else:
        to_bear = coverage.deductible_fen
    borne = min(amount, to_bear)
    amount -= borne
    steps.append(Step(StepCode.deductible, amount, borne, limit_fen=to_bear))
    if amount == 0 and borne > 0:
        reasons.append(Reason.nothing_payable_after_deductible)

    insurer = amount * (100 - coverage.copay_percent) // 100
    steps.append(Step(StepCode.copay, insurer, amount - insurer, percent=coverage.copay_percent))
    amount = insurer

    limits = [(StepCode.coverage_limit, coverage.sum_insured_fen - paid.get(coverage.code, 0))]
    if shares_plan_limit(policy.product, coverage):
        plan = policy.plan
        used = sum(
            paid.get(c.code, 0) for c in plan.coverages if shares_plan_limit(policy.product, c)
        )
        limits.append((StepCode.plan_limit, plan.sum_insured_fen - used))
    for code, left in limits:
        steps.append(_cap(code, amount, max(0, left), reasons))
        amount = steps[-1].amount_fen
    return steps, reasons


def _benefit(
    policy: PolicyTerms, claim: ClaimFacts, coverage: Coverage
) -> tuple[list[Step], list[Reason]]:
    times = PAYMENTS_ALLOWED.get((policy.product.code, coverage.code), 1)
    paid = claim.paid.whole_policy.get(coverage.code, 0)
    left = max(0, min(coverage.sum_insured_fen, coverage.sum_insured_fen * times - paid))
    amount = claim.amount_claimed_fen
    reasons: list[Reason] = []
    steps = [Step(StepCode.claimed, amount), _cap(StepCode.coverage_limit, amount, left, reasons)]
    return steps, reasons


def _cap(code: StepCode, amount: int, left: int, reasons: list[Reason]) -> Step:
    capped = min(amount, left)
    if capped < amount:
        if capped == 0:
            if Reason.limit_exhausted not in reasons:
                reasons.append(Reason.limit_exhausted)
        else:
            reasons.append(
                Reason.capped_by_plan_limit
                if code is StepCode.plan_limit
                else Reason.capped_by_coverage_limit
            )
    return Step(code, capped, amount - capped, limit_fen=left)


def assess(policy: PolicyTerms, claim: ClaimFacts) -> Assessment:
    """Whether ``claim`` is covered under ``policy`` and what it pays."""
    incident = claim.incident_date
    year = (
        policy_year(policy.effective_date, incident) if incident >= policy.effective_date else None
    )
    reasons = _in_force_reasons(policy, incident)
    coverage = next((c for c in policy.plan.coverages if c.code == claim.coverage_code), None)
    kind: CoverageKind | None = None
    if coverage is None:
        reasons.append(Reason.unknown_coverage)
    else:
        kind = coverage_kind(policy.product.line, coverage.code)
        reasons.extend(_coverage_reasons(policy, claim, coverage))
    claimed = claim.amount_claimed_fen
    if reasons or coverage is None:
        denied = (Step(StepCode.claimed, claimed), Step(StepCode.not_covered, 0, claimed))
        return Assessment(False, tuple(reasons), kind, year, claimed, 0, 0, 0, denied)

    if kind is CoverageKind.indemnity:
        steps, amount_reasons = _indemnity(policy, claim, coverage)
        after_deductible, after_copay = steps[1].amount_fen, steps[2].amount_fen
    else:
        steps, amount_reasons = _benefit(policy, claim, coverage)
        after_deductible = after_copay = claimed
    if claimed == 0:
        amount_reasons.insert(0, Reason.nothing_claimed)
    return Assessment(
        covered=True,
        reasons=tuple(amount_reasons),
        kind=kind,
        policy_year=year,
        claimed_fen=claimed,
        after_deductible_fen=after_deductible,
        after_copay_fen=after_copay,
        payable_fen=steps[-1].amount_fen,
        steps=tuple(steps),
    )


def paid_in_year(
    payments: Iterable[tuple[str, int | None, date]], effective_date: date, on: date
) -> PaidSoFar:
    """:class:`PaidSoFar` from earlier payments on the policy.

    ``payments`` are ``(coverage_code, amount_fen, incident_date)`` of claims already paid
    (``None`` counts as 0); a payment counts toward the year of its incident.  ``on`` is
    the new claim's incident date.
    """
    year = policy_year(effective_date, on).index if on >= effective_date else None
    this_year: dict[str, int] = {}
    whole: dict[str, int] = {}
    for code, fen, incident in payments:
        fen = fen or 0
        whole[code] = whole.get(code, 0) + fen
        if (
            year is not None
            and incident >= effective_date
            and policy_year(effective_date, incident).index == year
        ):
            this_year[code] = this_year.get(code, 0) + fen
    return PaidSoFar(this_year=this_year, whole_policy=whole)
