"""Helpers for scenario offer tests: customers with and without consent, signed events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.crm import consents
from covernet.identity import service as identity
from covernet.social.offer_models import Offer, OfferFunnelEvent
from tests.claims import test_parametric as parametric

EVENTS = "/api/v1/partner/events"
PERSON = {"birth_date": "1990-05-20", "gender": "M", "region": "310000"}


# The partner keys and the signed posting of the parametric claims' tests.
partner_key = parametric.key
shop = parametric.shop
air = parametric.air


def person(db_url: str, mobile: str, *, consent: bool = True, name: str = "王先生") -> str:
    """A registered customer (agreeing to marketing offers unless told not to)."""
    with unit_of_work(db_url) as db:
        user = identity.register_customer(db, mobile=mobile, password="s3cret-pass", name=name)
        if consent:
            notice = consents.NOTICES[consents.Purpose.marketing_offers]
            consents.set_consent(
                db,
                user.id,
                "marketing_offers",
                consents.ConsentIn(granted=True, text_version=notice.version),
            )
        return user.id


def event(event_id: str, kind: str, when: datetime, **data: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": kind, "occurred_at": when.isoformat(), "data": data}


def hospital(event_id: str, when: datetime, mobile: str, amount: int = 30_000) -> dict[str, Any]:
    return event(
        event_id,
        "hospital.payment",
        when,
        mobile=mobile,
        amount_fen=amount,
        hospital="瑞金医院",
        city="上海",
        **PERSON,
    )


def post(
    client: Any,
    headers: dict[str, str],
    body: dict[str, Any],
    *,
    partner: str = "demo-shop",
    **kw: Any,
) -> Any:
    """A signed event (``secret`` and ``timestamp`` may forge or age it)."""
    return parametric.post(client, headers, body, partner=partner, **kw)


def offers_of(db_url: str, user_id: str | None = None) -> list[Offer]:
    with unit_of_work(db_url) as db:
        stmt = select(Offer).order_by(Offer.created_at, Offer.id)
        if user_id is not None:
            stmt = stmt.where(Offer.user_id == user_id)
        rows = list(db.scalars(stmt))
        db.expunge_all()
        return rows


def funnel_rows(db_url: str, rule: str) -> list[tuple[str, str | None]]:
    with unit_of_work(db_url) as db:
        return [
            (f.kind, f.reason)
            for f in db.scalars(
                select(OfferFunnelEvent)
                .where(OfferFunnelEvent.rule_code == rule)
                .order_by(OfferFunnelEvent.id)
            )
        ]


@pytest.fixture
def morning() -> Any:
    """10:00 Beijing time today: outside the quiet hours."""
    local = clock.local_now().replace(hour=10, minute=0, second=0, microsecond=0)
    with clock.frozen(local):
        yield local
