"""Parametric and micro products paid without a human, from partners' signed events.

``flight.delayed`` (flight-delay)
    The product pays the coverage's sum insured (200 yuan) when the insured flight
    arrives 3 hours or more after its scheduled arrival, or is cancelled ("到达延误满3
    小时或航班取消"); the delay is actual minus scheduled arrival.  A smaller delay is
    answered ``not_triggered`` and makes no claim.
``order.returned`` (return-shipping)
    The product pays the postage the buyer actually paid, at most the coverage's sum
    insured (25 yuan an order), once the seller confirmed receipt of the return
    ("卖家确认签收"); without ``received_at`` or with no postage paid the event is
    ``not_triggered``.  One return per order pays ("部分退货的按一次退货赔付").

Either way the partner's own policy is found by ``external_ref`` (its order or booking
id) or ``policy_no`` — another partner's policy is ``unknown_policy`` — and row-locked,
so two events about one policy queue; a policy that already has a standing automatic
claim on the coverage answers ``already_claimed``.  Then
:func:`covernet.claims.service.file_auto_claim` assesses and settles the claim in the
event's transaction, its payout goes out through the payment provider and the
provider's confirmation makes it paid.  An event the cover does not pay for (the flight
was outside the policy period, the policy was cancelled) is ``not_covered`` with the
adjudication's reasons and makes no claim.

Payee: the payout goes to the holder's own payment account, which the partner gives in
``data.payee`` (name and account, as used to pay for the booking or order): both
products promise the money "straight to your payment account" (赔款直接打到您的支付账户
/ 原路退回买家支付账户).  It never goes to a partner's account for distribution: the
partner is not the insured, and an intermediary holding indemnities would be holding
the insured's money (保险法 forbids intermediaries to 截留、挪用保险金), which R11's
premium rules do not make any better.  A triggered event without a payee is refused
(400 ``payee_required``) and changes nothing, so the partner can send it again with one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.orm import Session

from covernet.catalog import service as catalog
from covernet.catalog.spec import Coverage
from covernet.claims import service
from covernet.core import clock
from covernet.core.errors import Conflict, ValidationFailed
from covernet.partners.events import Outcome, Received, handles
from covernet.policies import partner_policies
from covernet.policies.models import Policy

# flight-delay: "到达延误满3小时或航班取消" pays the coverage's sum insured.
DELAY_TRIGGER_MINUTES = 180
# The product and coverage each event type pays from.
FLIGHT_COVERAGES = {"flight-delay": "delay"}
RETURN_COVERAGES = {"return-shipping": "return-freight"}
# A partner's delay_minutes may differ from the times' difference by rounding only.
DELAY_TOLERANCE_MINUTES = 1


class PayeeIn(BaseModel):
    """The holder's own payment account the indemnity is paid to."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40)
    account: str = Field(description="the holder's payment account or bank card, 8 to 32 digits")

    @field_validator("account")
    @classmethod
    def _digits(cls, value: str) -> str:
        digits = re.sub(r"[\s-]", "", value)
        if not re.fullmatch(r"\d{8,32}", digits):
            raise ValueError("an account number has 8 to 32 digits")
        return digits


class _AboutPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_ref: str | None = Field(
        default=None, min_length=1, max_length=100, description="your order or booking id"
    )
    policy_no: str | None = Field(default=None, min_length=1, max_length=32)
    payee: PayeeIn | None = None

    @model_validator(mode="after")
    def _named(self) -> _AboutPolicy:
        if not self.external_ref and not self.policy_no:
            raise ValueError("name the policy by external_ref or policy_no")
        return self


class FlightDelayed(_AboutPolicy):
    """``flight.delayed``: the insured flight arrived late, or was cancelled."""

    flight_no: str = Field(pattern=r"^[A-Z0-9]{2}[0-9]{1,4}[A-Z]?$", description="e.g. MU5101")
    scheduled_departure: AwareDatetime | None = None
    scheduled_arrival: AwareDatetime
    actual_arrival: AwareDatetime | None = Field(default=None, description="unless cancelled")
    cancelled: bool = False
    delay_minutes: int | None = Field(default=None, ge=0, le=60 * 24 * 30)

    @model_validator(mode="after")
    def _consistent(self) -> FlightDelayed:
        if self.cancelled:
            return self
        if self.actual_arrival is None:
            raise ValueError("actual_arrival is required unless the flight was cancelled")
        if self.delay_minutes is not None:
            computed = delay_of(self.scheduled_arrival, self.actual_arrival)
            if abs(computed - self.delay_minutes) > DELAY_TOLERANCE_MINUTES:
                raise ValueError(
                    f"delay_minutes ({self.delay_minutes}) disagrees with the arrival times "
                    f"({computed} minutes)"
                )
        return self


class OrderReturned(_AboutPolicy):
    """``order.returned``: the buyer sent goods back; the seller received them."""

    shipped_at: AwareDatetime = Field(description="when the buyer shipped the return")
    received_at: AwareDatetime | None = Field(
        default=None, description="when the seller confirmed receipt (the trigger)"
    )
    shipping_fee_fen: int = Field(ge=0, le=10**7, description="the postage the buyer paid")

    @model_validator(mode="after")
    def _in_order(self) -> OrderReturned:
        if self.received_at is not None and self.received_at < self.shipped_at:
            raise ValueError("received_at is before shipped_at")
        return self


# Pure triggers ------------------------------------------------------------------------


def delay_of(scheduled: datetime, actual: datetime) -> int:
    """Whole minutes of arrival delay (never negative)."""
    return max(0, int((actual - scheduled).total_seconds() // 60))


@dataclass(frozen=True)
class Trigger:
    triggered: bool
    reason: str | None = None  # why not
    detail: dict[str, Any] | None = None


def flight_trigger(data: FlightDelayed) -> Trigger:
    if data.cancelled:
        return Trigger(True, detail={"cancelled": True})
    assert data.actual_arrival is not None
    minutes = delay_of(data.scheduled_arrival, data.actual_arrival)
    detail = {"delay_minutes": minutes, "threshold_minutes": DELAY_TRIGGER_MINUTES}
    if minutes < DELAY_TRIGGER_MINUTES:
        return Trigger(False, "delay_below_threshold", detail)
    return Trigger(True, detail=detail)


def return_trigger(data: OrderReturned) -> Trigger:
    if data.received_at is None:
        return Trigger(False, "return_not_received")
    if data.shipping_fee_fen == 0:
        return Trigger(False, "no_shipping_fee")
    return Trigger(True, detail={"shipping_fee_fen": data.shipping_fee_fen})


# Notes the holder reads ---------------------------------------------------------------


def _when(moment: datetime) -> str:
    local = clock.to_local(moment)
    return f"{local.month}月{local.day}日{local:%H:%M}"


def _duration(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours}小时" + (f"{rest}分钟" if rest else "")


def _yuan(fen: int) -> str:
    return f"{fen / 100:.2f}元"


def flight_note(data: FlightDelayed) -> str:
    if data.cancelled:
        return (
            f"您投保的航班{data.flight_no}（计划{_when(data.scheduled_arrival)}到达）已取消，"
            "合作方已将航班信息告知我们，系统已自动为您报案。"
        )
    assert data.actual_arrival is not None
    minutes = delay_of(data.scheduled_arrival, data.actual_arrival)
    return (
        f"您投保的航班{data.flight_no}计划{_when(data.scheduled_arrival)}到达，"
        f"实际{_when(data.actual_arrival)}到达，延误{_duration(minutes)}，"
        "已达到延误满3小时的赔付条件，系统已自动为您报案。"
    )


def return_note(data: OrderReturned) -> str:
    assert data.received_at is not None
    return (
        f"您的退货已于{_when(data.received_at)}由卖家签收，您实际支付退货运费"
        f"{_yuan(data.shipping_fee_fen)}，系统已自动为您报案。"
    )


# Handlers -----------------------------------------------------------------------------


def _local_date(moment: datetime) -> date:
    return clock.to_local(moment).date()


def _not_in_future(moment: datetime | None, field: str) -> None:
    if moment is not None and moment > clock.now():
        raise ValidationFailed(
            f"{field} is in the future", code="event_in_future", detail={"field": f"data.{field}"}
        )


def _policy(db: Session, received: Received, data: _AboutPolicy, wanted: dict[str, str]) -> Policy:
    policy = partner_policies.of_partner(
        db,
        received.partner_code,
        external_ref=data.external_ref,
        policy_no=data.policy_no,
        lock=True,  # events about one policy queue here
    )
    if policy.product_code not in wanted:
        raise ValidationFailed(
            f"a {received.type} event does not concern a {policy.product_code} policy",
            code="event_not_for_product",
            detail={"field": "type", "products": sorted(wanted)},
        )
    return policy


def _coverage(db: Session, policy: Policy, code: str) -> Coverage:
    product, _ = catalog.product_at_version(db, policy.product_version_id)
    plan = product.plan(policy.plan_code)
    found = next((c for c in plan.coverages if c.code == code), None) if plan else None
    if found is None:
        raise ValidationFailed(
            "the policy's plan has no such coverage", code="coverage_not_in_policy"
        )
    return found


def _policy_detail(policy: Policy) -> dict[str, Any]:
    return {"policy_no": policy.policy_no, "external_ref": policy.external_ref}


def _settle(
    db: Session,
    received: Received,
    policy: Policy,
    data: _AboutPolicy,
    *,
    coverage_code: str,
    incident: date,
    amount_fen: int,
    note: str,
    basis: str = "",
    trigger: dict[str, Any],
) -> Outcome:
    standing = service.auto_claim_of(db, policy.id, coverage_code)
    if standing is not None:
        return Outcome(
            "already_claimed",
            {**_policy_detail(policy), "claim_no": standing.claim_no, "stage": standing.stage},
        )
    if data.payee is None:
        raise ValidationFailed(
            "the event pays out: give the holder's payment account in data.payee",
            code="payee_required",
            detail={"field": "data.payee"},
        )
    claim, found = service.file_auto_claim(
        db,
        policy,
        coverage_code=coverage_code,
        incident_date=incident,
        amount_claimed_fen=amount_fen,
        payee_name=data.payee.name,
        payee_account=data.payee.account,
        external_event_id=received.key,
        reporter=("partner", received.partner_code),
        reported_by=received.actor,
        report_note=note,
        basis_note=basis,
    )
    if claim is None:
        return Outcome(
            "not_covered",
            {**_policy_detail(policy), "reasons": [r.value for r in found.reasons], **trigger},
        )
    return Outcome(
        "claim_approved" if claim.stage == "approved" else "claim_assessed",
        {
            **_policy_detail(policy),
            "claim_id": claim.id,
            "claim_no": claim.claim_no,
            "stage": claim.stage,
            "amount_fen": claim.assessed_amount_fen,
            "payout_id": claim.payout_id,
            **trigger,
        },
        claim_id=claim.id,
    )


@handles("flight.delayed", FlightDelayed)
def flight_delayed(db: Session, received: Received, data: FlightDelayed) -> Outcome:
    _not_in_future(data.actual_arrival, "actual_arrival")
    policy = _policy(db, received, data, FLIGHT_COVERAGES)
    code = FLIGHT_COVERAGES[policy.product_code]
    trigger = flight_trigger(data)
    if not trigger.triggered:
        return Outcome(
            "not_triggered",
            {**_policy_detail(policy), "reason": trigger.reason, **(trigger.detail or {})},
        )
    # The flight's day (cover runs from the scheduled departure day).
    incident = _local_date(data.scheduled_departure or data.scheduled_arrival)
    if incident > clock.today():
        raise Conflict(
            "report a cancellation on or after the flight's day; nothing was recorded",
            code="event_too_early",
            detail={"field": "data.scheduled_arrival"},
        )
    coverage = _coverage(db, policy, code)
    return _settle(
        db,
        received,
        policy,
        data,
        coverage_code=code,
        incident=incident,
        amount_fen=coverage.sum_insured_fen,  # a fixed benefit
        note=flight_note(data),
        trigger={"flight_no": data.flight_no, **(trigger.detail or {})},
    )


@handles("order.returned", OrderReturned)
def order_returned(db: Session, received: Received, data: OrderReturned) -> Outcome:
    _not_in_future(data.shipped_at, "shipped_at")
    _not_in_future(data.received_at, "received_at")
    policy = _policy(db, received, data, RETURN_COVERAGES)
    code = RETURN_COVERAGES[policy.product_code]
    trigger = return_trigger(data)
    if not trigger.triggered:
        return Outcome(
            "not_triggered",
            {**_policy_detail(policy), "reason": trigger.reason, **(trigger.detail or {})},
        )
    coverage = _coverage(db, policy, code)
    fee, limit = data.shipping_fee_fen, coverage.sum_insured_fen
    basis = (
        f"（实际退货运费{_yuan(fee)}，每单最高{_yuan(limit)}，按{_yuan(limit)}赔付）"
        if fee > limit
        else "（按实际退货运费赔付）"
    )
    return _settle(
        db,
        received,
        policy,
        data,
        coverage_code=code,
        incident=_local_date(data.shipped_at),  # the return happened within the cover
        amount_fen=fee,
        note=return_note(data),
        basis=basis,
        trigger={"shipping_fee_fen": fee},
    )
