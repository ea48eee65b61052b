"""Customers' consents by purpose (R28): informed, explicit, withdrawable as easily as
given.

- No row means no consent: nothing is pre-ticked, and a purpose the customer never
  answered reads ``granted: false`` (R8, R28).
- Granting names the version of the notice the customer was shown
  (:data:`NOTICES`); a grant against an older or unknown version is refused
  (``consent_text_outdated``), so every grant proves which text it agreed to.
- Withdrawing is one call (or one tap on ``/account/consents``), needs no reason and
  takes effect at once; every change is kept in ``customer_consent_events`` with its
  time and source, and audited (without personal data).

:func:`consents_of` is the read other domains use (scenario offers check
``marketing_offers`` before making an offer; customer 360 shows them).  The JSON
routes (``GET /api/v1/me/consents``, ``PUT /api/v1/me/consents/{purpose}``) and the
account page share :func:`set_consent`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.core import clock, i18n
from covernet.core.errors import NotFound, ValidationFailed
from covernet.crm.consent_models import (
    ConsentAction,
    CustomerConsent,
    CustomerConsentEvent,
    Purpose,
)
from covernet.identity.access import Customer, Db, Principal, Public
from covernet.identity.models import Role
from covernet.web import csrf
from covernet.web.csrf import PostedForm
from covernet.web.render import error_message, mark_page, render


@dataclass(frozen=True)
class Notice:
    """What the customer is told before agreeing (R28: purpose, data, retention, rights)."""

    version: str
    zh: str
    en: str


NOTICES: dict[Purpose, Notice] = {
    Purpose.marketing_offers: Notice(
        version="2026-12-01",
        zh=(
            "同意后，当合作方（医院、电商、航旅、运动和积分平台）告诉我们与您手机号相关的"
            "场景（如一笔医院付款、一次订单、一次订票、步数达标、获得积分）时，我们可能向您"
            "推送相关保险产品或赠险的优惠信息（站内信和短信，21:00至次日08:00不发送）。"
            "我们只使用合作方提供的场景信息判断是否推送，不向合作方透露您是否同意。"
            "推送记录保存2年。您可随时在“我的账户”撤回同意，撤回后不再推送，不影响其他服务。"
        ),
        en=(
            "If you agree, when a partner (hospital, marketplace, travel, fitness or points "
            "platform) tells us of an event linked to your mobile number (a hospital payment, "
            "an order, a booking, a steps milestone, points earned) we may send you an offer "
            "of related insurance or gifted cover (in-app and SMS, never 21:00-08:00). We use "
            "the partner's event only to decide whether to send it and never tell partners "
            "whether you agreed. Offers are kept for 2 years. You can withdraw at any time "
            "under My account; we then stop, and nothing else changes."
        ),
    )
}
SOURCES = ("account_page", "api", "offer_page")


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    granted: bool = Field(description="true to grant, false to withdraw")
    text_version: str | None = Field(
        default=None, max_length=32, description="the notice version shown (to grant)"
    )
    source: Literal["account_page", "api", "offer_page"] = "api"


class ConsentOut(BaseModel):
    purpose: str
    granted: bool
    text_version: str | None = Field(description="the notice version last agreed to")
    current_version: str
    changed_at: datetime | None
    source: str | None
    notice: dict[str, str]


def _purpose(value: str) -> Purpose:
    try:
        return Purpose(value)
    except ValueError:
        raise NotFound(
            f"no consent purpose '{value}'",
            code="unknown_consent_purpose",
            detail={"field": "purpose", "allowed": [p.value for p in Purpose]},
        ) from None


def _row(
    db: Session, user_id: str, purpose: Purpose, *, lock: bool = False
) -> CustomerConsent | None:
    stmt = select(CustomerConsent).where(
        CustomerConsent.user_id == user_id, CustomerConsent.purpose == purpose.value
    )
    if lock:
        stmt = stmt.with_for_update()
    return db.scalar(stmt)


def has_consent(db: Session, user_id: str, purpose: Purpose | str) -> bool:
    row = _row(db, user_id, Purpose(purpose))
    return row is not None and row.granted


def consents_of(db: Session, user_id: str) -> list[ConsentOut]:
    """Every purpose with the customer's standing answer (not answered: not granted)."""
    rows = {
        r.purpose: r
        for r in db.scalars(select(CustomerConsent).where(CustomerConsent.user_id == user_id))
    }
    out = []
    for purpose, notice in NOTICES.items():
        row = rows.get(purpose.value)
        out.append(
            ConsentOut(
                purpose=purpose.value,
                granted=bool(row and row.granted),
                text_version=row.text_version if row and row.granted else None,
                current_version=notice.version,
                changed_at=row.changed_at if row else None,
                source=row.source if row else None,
                notice={"zh": notice.zh, "en": notice.en},
            )
        )
    return out


def set_consent(db: Session, user_id: str, purpose_value: str, data: ConsentIn) -> ConsentOut:
    """Grant (naming the notice version shown) or withdraw; a repeat changes nothing."""
    purpose = _purpose(purpose_value)
    notice = NOTICES[purpose]
    if data.granted and data.text_version != notice.version:
        raise ValidationFailed(
            "to agree, show the current notice and send its version",
            code="consent_text_outdated",
            detail={"field": "text_version", "current_version": notice.version},
        )
    row = _row(db, user_id, purpose, lock=True)
    now = clock.now()
    if row is None:
        if not data.granted:  # nothing was ever granted: withdrawing changes nothing
            return _one(db, user_id, purpose)
        row = CustomerConsent(
            user_id=user_id,
            purpose=purpose.value,
            granted=True,
            text_version=notice.version,
            source=data.source,
            changed_at=now,
        )
        try:
            with db.begin_nested():
                db.add(row)
        except IntegrityError:  # a concurrent first grant won: take its row
            row = _row(db, user_id, purpose, lock=True)
            assert row is not None
    elif row.granted == data.granted and (not data.granted or row.text_version == notice.version):
        return _one(db, user_id, purpose)
    row.granted, row.source, row.changed_at = data.granted, data.source, now
    if data.granted:
        row.text_version = notice.version
    action = ConsentAction.granted if data.granted else ConsentAction.withdrawn
    db.add(
        CustomerConsentEvent(
            user_id=user_id,
            purpose=purpose.value,
            action=action.value,
            text_version=row.text_version,
            source=data.source,
            at=now,
        )
    )
    audit.record(
        db,
        f"consent.{action.value}",
        actor=audit.Actor("user", user_id, Role.customer.value),
        subject_type="user",
        subject_id=user_id,
        detail={"purpose": purpose.value, "text_version": row.text_version, "source": data.source},
    )
    db.flush()
    return _one(db, user_id, purpose)


def message_keys() -> list[str]:
    """Every message key the consents page builds at run time (checked by the tests)."""
    keys = [f"consent.purpose.{p.value}" for p in Purpose]
    keys += [f"consent.action.{a.value}" for a in ConsentAction]
    return keys + [f"consent.source.{s}" for s in SOURCES]


def _one(db: Session, user_id: str, purpose: Purpose) -> ConsentOut:
    return next(c for c in consents_of(db, user_id) if c.purpose == purpose.value)


def history_of(db: Session, user_id: str) -> list[CustomerConsentEvent]:
    return list(
        db.scalars(
            select(CustomerConsentEvent)
            .where(CustomerConsentEvent.user_id == user_id)
            .order_by(CustomerConsentEvent.at.desc(), CustomerConsentEvent.id.desc())
        )
    )


# Routes --------------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1", tags=["consents"])
pages = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)
PAGE = "/account/consents"


@router.get("/me/consents", response_model=list[ConsentOut])
def my_consents(db: Db, who: Customer) -> list[ConsentOut]:
    """Your consents by purpose; a purpose you never answered is not granted."""
    assert who.user_id is not None
    return consents_of(db, who.user_id)


@router.put("/me/consents/{purpose}", response_model=ConsentOut)
def put_consent(purpose: str, body: ConsentIn, db: Db, who: Customer) -> ConsentOut:
    """Grant (with the notice version you were shown) or withdraw one purpose."""
    assert who.user_id is not None
    return set_consent(db, who.user_id, purpose, body)


def _page(
    request: Request, db: Session, who: Principal, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    assert who.user_id is not None
    lang = i18n.negotiate_lang(request)
    return render(
        request,
        "offer_consents.html",
        status,
        toggle_path=PAGE,
        consents=[
            {
                **c.model_dump(),
                "text": c.notice[lang if lang in c.notice else "zh"],
                "purpose_key": f"consent.purpose.{c.purpose}",
            }
            for c in consents_of(db, who.user_id)
        ],
        history=[
            {
                "at": h.at,
                "purpose_key": f"consent.purpose.{h.purpose}",
                "action_key": f"consent.action.{h.action}",
                "source_key": f"consent.source.{h.source}",
            }
            for h in history_of(db, who.user_id)[:20]
        ],
        csrf_token=csrf.form_token(request, who),
        error=error,
    )


@pages.get(PAGE, response_class=HTMLResponse)
def consents_page(request: Request, db: Db, who: Public) -> Response:
    """My consents: each purpose's notice, its state and one button to change it."""
    if not who.is_authenticated:
        return RedirectResponse(f"/login?next={PAGE}", status_code=303)
    if who.role is not Role.customer:
        return RedirectResponse("/account", status_code=303)
    return _page(request, db, who)


@pages.post(PAGE + "/{purpose}", response_class=HTMLResponse)
def change_from_page(
    purpose: str, request: Request, form: PostedForm, db: Db, who: Public
) -> Response:
    if not who.is_authenticated:
        return RedirectResponse(f"/login?next={PAGE}", status_code=303)
    if who.role is not Role.customer or who.user_id is None:
        return RedirectResponse("/account", status_code=303)
    granted = form.get("granted") == "yes"
    version = form.get("text_version")
    try:
        set_consent(
            db,
            who.user_id,
            purpose,
            ConsentIn(
                granted=granted,
                text_version=str(version)[:32] if granted and version else None,
                source="account_page",
            ),
        )
    except ValidationFailed as exc:
        db.rollback()
        lang = i18n.negotiate_lang(request)
        return _page(request, db, who, error=error_message(exc, lang), status=exc.status)
    back = str(form.get("next") or PAGE)
    return RedirectResponse(back if back.startswith("/o/") else PAGE, status_code=303)
