"""R30: personal data is kept only as long as needed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.identity.models import LoginAttempt
from covernet.identity.service import purge_login_attempts
from covernet.policies.models import Quote
from covernet.policies.quotes import scrub_expired_quotes

QUOTE = {
    "product_code": "accident-monthly",
    "plan_code": "basic",
    "insured": {"id_number": "11010519491231002X", "region": "110000"},
}


def test_old_quotes_lose_the_insureds_identity_but_keep_their_figures(
    client: Any, db_url: str
) -> None:
    from datetime import date

    from covernet.core.cn_identity import make_id_number

    number = make_id_number("110105", date(1990, 6, 1), 12)
    old = client.post(
        "/api/v1/quotes", json={**QUOTE, "insured": {**QUOTE["insured"], "id_number": number}}
    )
    assert old.status_code == 201, old.text
    with clock.shifted(timedelta(days=29)), unit_of_work(db_url) as db:
        assert scrub_expired_quotes(db) == 0
    with clock.shifted(timedelta(days=31)), unit_of_work(db_url) as db:
        assert scrub_expired_quotes(db) == 1
        assert scrub_expired_quotes(db) == 0
    with unit_of_work(db_url) as db:
        quote = db.scalars(select(Quote)).one()
        assert quote.insured_id_enc is None and quote.insured_birth_date is None
        assert quote.premium_fen == 500 and quote.insured_age is not None


def test_login_records_are_purged_after_their_retention(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    client.post("/api/v1/auth/login", json={"mobile": customer["mobile"], "password": "bad-1"})
    with unit_of_work(db_url) as db:
        assert purge_login_attempts(db) == 0
    with clock.shifted(timedelta(days=31)), unit_of_work(db_url) as db:
        assert purge_login_attempts(db) == 1
        assert db.scalar(select(func.count()).select_from(LoginAttempt)) == 0
