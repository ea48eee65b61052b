"""JSON routes of scenario offers: the customer's own open offers, and the rules in force
with their conversion for operations staff."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from covernet.core import clock
from covernet.core.config import get_settings
from covernet.identity.access import Customer, Db, Principal, allow
from covernet.identity.models import Role
from covernet.social import offer_pages
from covernet.social.offer_models import Offer

router = APIRouter(prefix="/api/v1", tags=["scenario offers"])
Ops = Annotated[Principal, allow(Role.ops, Role.admin)]


class OfferOut(BaseModel):
    id: str
    rule_code: str
    kind: str
    product_code: str
    plan_code: str
    status: str
    url: str
    expires_at: datetime
    created_at: datetime


@router.get("/me/offers", response_model=list[OfferOut])
def my_offers(db: Db, who: Customer) -> list[OfferOut]:
    """Your offers that have not expired, newest first (each links to its page)."""
    base = get_settings().public_url.rstrip("/")
    rows = db.scalars(
        select(Offer)
        .where(Offer.user_id == who.user_id, Offer.expires_at > clock.now())
        .order_by(Offer.created_at.desc())
        .limit(50)
    )
    return [
        OfferOut(
            id=o.id,
            rule_code=o.rule_code,
            kind=o.kind,
            product_code=o.product_code,
            plan_code=o.plan_code,
            status=o.status,
            url=f"{base}/o/{o.token}",
            expires_at=o.expires_at,
            created_at=o.created_at,
        )
        for o in rows
    ]


@router.get("/offers/rules")
def offer_rules(db: Db, _: Ops) -> list[dict[str, Any]]:
    """The rules in force, their version and their funnel (events, offers, suppressed by
    reason, shown, quoted, bought, conversion %)."""
    return offer_pages.console_rows(db, "zh")
