"""Offer pages on SQLite and PostgreSQL: the landing page's one tap quotes and leads to the
real purchase flow, whose purchase counts as the offer's conversion; a gift redeemed
with points is activated into a gifted policy within R12; expired offers say so; the
console lists rules with their funnel and edits a rule as a validated, audited version."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from covernet.audit.models import AuditEntry
from covernet.catalog.loader import load_catalog
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.identity.models import Role
from covernet.policies.models import Policy
from covernet.social import offer_rules
from covernet.social.offer_models import OfferRuleVersion
from tests.conftest import CATALOG_DIR as CATALOG
from tests.conftest import add_staff, bearer, sign_in_with_cookie, staff_headers
from tests.policies.buying import APPLICANT_ID, application, apply, documents, pay
from tests.social import test_offers_helpers as support
from tests.social.test_offers_helpers import (
    event,
    funnel_rows,
    hospital,
    offers_of,
    person,
    post,
)

# fixtures shared with the other offer tests
morning = support.morning
shop = support.shop

NO = {
    "major-diagnoses": False,
    "pending-hospital": False,
    "chronic-conditions": False,
    "congenital": False,
}


def medical_offer(client: Any, db_url: str, shop: dict[str, str], when: datetime) -> Any:
    user_id = person(db_url, "13900000100")
    assert post(client, shop, hospital("page-1", when, "13900000100")).status_code == 200
    (offer,) = offers_of(db_url, user_id)
    return user_id, offer


def test_one_tap_quote_then_purchase_counts_as_conversion(
    client: Any, db_url: str, shop: dict[str, str], morning: datetime
) -> None:
    user_id, offer = medical_offer(client, db_url, shop, morning)
    page = client.get(f"/o/{offer.token}")
    assert page.status_code == 200
    assert "百万医疗" in page.text and "data-one-tap" in page.text
    assert "data-quote-card" in page.text  # the price and disclosures before the tap
    assert "13900000100" not in page.text
    client.get(f"/o/{offer.token}")  # shown counts once
    csrf = sign_in_with_cookie(client, db_url, user_id)
    tapped = client.post(
        f"/o/{offer.token}/quote", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert tapped.status_code == 303, tapped.text
    quote_id = tapped.headers["location"].removeprefix("/apply/")
    (quoted,) = offers_of(db_url, user_id)
    assert quoted.quote_id == quote_id and quoted.status == "quoted"
    assert client.get(tapped.headers["location"]).status_code == 200  # the normal apply page
    # Buy it through the real flow: documents confirmed, health answers, payment.
    client.cookies.clear()
    headers = bearer(client, "13900000100", "s3cret-pass")
    body = application(
        client, {"quote_id": quote_id, "product_code": "medical-million"}, health_answers=NO
    )
    made = apply(client, headers, body)
    assert made.status_code == 201, made.text
    pay(client, made.json()["payment_id"])
    (bought,) = offers_of(db_url, user_id)
    assert bought.status == "purchased" and bought.policy_id
    with unit_of_work(db_url) as db:
        policy = db.get(Policy, bought.policy_id)
        assert policy is not None and policy.customer_id == user_id
    assert funnel_rows(db_url, "hospital-medical") == [
        ("event", None),
        ("offer", None),
        ("shown", None),
        ("quote", None),
        ("purchase", None),
    ]
    used = client.get(f"/o/{offer.token}")
    assert "data-offer-used" in used.text and "data-one-tap" not in used.text
    english = client.get(f"/o/{offer.token}?lang=en")
    assert "Big hospital bills" in english.text
    assert "This offer has been used - you bought" in english.text
    mine = client.get("/api/v1/me/offers", headers=headers).json()
    assert [(o["rule_code"], o["status"]) for o in mine] == [("hospital-medical", "purchased")]
    assert mine[0]["url"].endswith(f"/o/{offer.token}")
    ops = staff_headers(client, db_url, "ops-api", Role.ops)
    assert client.get("/api/v1/offers/rules", headers=headers).status_code == 403
    (medical,) = [
        r
        for r in client.get("/api/v1/offers/rules", headers=ops).json()
        if r["code"] == "hospital-medical"
    ]
    assert medical["counts"]["purchase"] == 1 and medical["conversion"] == 100.0
    ops_id, _ = add_staff(db_url, "ops-funnel", Role.ops)
    sign_in_with_cookie(client, db_url, ops_id)
    console = client.get("/console/offers")
    assert console.status_code == 200
    row = console.text[console.text.index('<tr data-rule="hospital-medical"') :]
    row = row[: row.index("</tr>")]
    assert re.search(r'data-count="purchase">1<', row)
    assert re.search(r'data-count="conversion">100.0%<', row)
    assert 'data-bar="purchase"' in console.text and "<svg" in console.text
    assert "139****0100" in console.text and "13900000100" not in console.text


def test_missing_insured_facts_are_asked_on_the_page(
    client: Any, db_url: str, shop: dict[str, str], morning: datetime
) -> None:
    user_id = person(db_url, "13900000110")
    bare = hospital("page-bare", morning, "13900000110")
    for name in ("birth_date", "gender", "region"):
        bare["data"].pop(name)
    assert post(client, shop, bare).status_code == 200
    (offer,) = offers_of(db_url, user_id)
    page = client.get(f"/o/{offer.token}")
    assert 'name="birth_date"' in page.text and 'name="region"' in page.text
    csrf = sign_in_with_cookie(client, db_url, user_id)
    refused = client.post(f"/o/{offer.token}/quote", data={"csrf_token": csrf})
    assert refused.status_code == 400  # the page again, naming what is missing
    assert offers_of(db_url, user_id)[0].quote_id is None
    done = client.post(
        f"/o/{offer.token}/quote",
        data={"csrf_token": csrf, "birth_date": "1985-01-02", "gender": "F", "region": "110000"},
        follow_redirects=False,
    )
    assert done.status_code == 303


def test_an_expired_offer_says_so_and_quotes_nothing(
    client: Any, db_url: str, shop: dict[str, str], morning: datetime
) -> None:
    user_id, offer = medical_offer(client, db_url, shop, morning)
    csrf = sign_in_with_cookie(client, db_url, user_id)
    with clock.frozen(morning + timedelta(hours=169)):
        page = client.get(f"/o/{offer.token}")
        assert page.status_code == 200 and "data-offer-expired" in page.text
        tapped = client.post(f"/o/{offer.token}/quote", data={"csrf_token": csrf})
        assert tapped.status_code == 409
    assert offers_of(db_url, user_id)[0].quote_id is None
    assert ("shown", None) not in funnel_rows(db_url, "hospital-medical")
    assert client.get("/o/not-a-real-token-at-all-000").status_code == 404


def test_gift_redeemed_with_points_is_activated_within_r12(
    client: Any, db_url: str, shop: dict[str, str], morning: datetime
) -> None:
    user_id = person(db_url, "13900000120")
    other = person(db_url, "13900000121")
    points = {"merchant": "demo-mall", "points": 100, "balance": 600}
    sent = post(
        client, shop, event("gift-1", "points.earned", morning, mobile="13900000120", **points)
    )
    assert sent.status_code == 200
    (offer,) = offers_of(db_url, user_id)
    anonymous = client.get(f"/o/{offer.token}")
    assert "data-one-tap" in anonymous.text and "offer.not_yours" not in anonymous.text
    to_login = client.post(f"/o/{offer.token}/redeem", data={}, follow_redirects=False)
    assert to_login.headers["location"] == f"/login?next=/o/{offer.token}"
    csrf = sign_in_with_cookie(client, db_url, other)
    assert "data-one-tap" not in client.get(f"/o/{offer.token}").text
    assert client.post(f"/o/{offer.token}/redeem", data={"csrf_token": csrf}).status_code == 403
    client.cookies.clear()
    csrf = sign_in_with_cookie(client, db_url, user_id)
    page = client.get(f"/o/{offer.token}")
    assert "500" in page.text and "data-one-tap" in page.text
    redeemed = client.post(
        f"/o/{offer.token}/redeem", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert redeemed.status_code == 303
    form = client.get(f"/o/{offer.token}")
    assert 'action="/o/' in form.text and "/activate" in form.text
    docs = documents(client, "accident-monthly")["documents"]
    data = {"csrf_token": csrf, "name": "王先生", "id_number": APPLICANT_ID}
    for d in docs:
        data[f"doc_hash.{d['code']}"] = d["content_hash"]
        data[f"confirm.{d['code']}"] = "yes"
    done = client.post(f"/o/{offer.token}/activate", data=data, follow_redirects=False)
    assert done.status_code == 303, done.text
    policy_id = done.headers["location"].removeprefix("/policies/")
    with unit_of_work(db_url) as db:
        policy = db.get(Policy, policy_id)
        assert policy is not None
        assert policy.gifted and policy.customer_id == user_id
        assert policy.line == "accident" and policy.premium_fen <= 10_000  # R12
        redeem = db.scalar(select(AuditEntry).where(AuditEntry.action == "offer.gift_redeemed"))
        assert redeem is not None and redeem.detail["redeem_cost"] == 500
    (activated,) = offers_of(db_url, user_id)
    assert activated.status == "purchased" and activated.policy_id == policy_id
    assert funnel_rows(db_url, "points-accident-gift")[-1] == ("purchase", None)
    again = client.post(f"/o/{offer.token}/activate", data=data)
    assert again.status_code == 409  # already activated


def test_console_edit_validates_versions_and_audits(
    client: Any, db_url: str, shop: dict[str, str], morning: datetime
) -> None:
    advisor_id, _ = add_staff(db_url, "adv-offers", Role.advisor)
    sign_in_with_cookie(client, db_url, advisor_id)
    assert client.get("/console/offers").status_code == 403
    client.cookies.clear()
    ops_id, _ = add_staff(db_url, "ops-edit", Role.ops)
    csrf = sign_in_with_cookie(client, db_url, ops_id)
    page = client.get("/console/offers/hospital-medical")
    assert page.status_code == 200 and "amount_fen &gt;= 20000" in page.text
    rule = offer_rules.file_rule("hospital-medical")
    assert rule is not None
    text = offer_rules.rule_yaml(rule)
    bad = text.replace("amount_fen >= 20000", "amout_fen >= 50000")
    refused = client.post(
        "/console/offers/hospital-medical", data={"csrf_token": csrf, "yaml": bad}
    )
    assert refused.status_code == 400
    assert "when[0]" in refused.text and "amout_fen" in refused.text
    renamed = text.replace("code: hospital-medical", "code: other-rule")
    assert (
        client.post(
            "/console/offers/hospital-medical", data={"csrf_token": csrf, "yaml": renamed}
        ).status_code
        == 400
    )
    gift = text.replace("kind: quote", "kind: gift").replace(
        "product: medical-million", "product: account-security"
    )
    assert (
        client.post(
            "/console/offers/hospital-medical", data={"csrf_token": csrf, "yaml": gift}
        ).status_code
        == 400
    )
    with unit_of_work(db_url) as db:
        assert db.scalars(select(OfferRuleVersion)).all() == []
    good = text.replace("amount_fen >= 20000", "amount_fen >= 50000")
    saved = client.post(
        "/console/offers/hospital-medical",
        data={"csrf_token": csrf, "yaml": good},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert client.get(saved.headers["location"]).text.count('data-version="1"') == 1
    with unit_of_work(db_url) as db:
        (row,) = db.scalars(select(OfferRuleVersion)).all()
        assert (row.version, row.created_by) == (1, ops_id)
        entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "offer_rule.save"))
        assert entry is not None and entry.subject_id == "hospital-medical"
        assert entry.detail["version"] == 1
        (found,) = [e for e in offer_rules.effective(db) if e.rule.code == "hospital-medical"]
        assert (found.version, found.source) == ("db:1", "console")
        # The file changes the rule: the file's is newer and wins.
        config = offer_rules.file_config()
        edited = config.model_copy(
            update={
                "rules": [
                    r.model_copy(update={"expires_hours": 24}) if r.code == rule.code else r
                    for r in config.rules
                ]
            }
        )
        (after,) = [e for e in offer_rules.effective(db, edited) if e.rule.code == rule.code]
        assert after.source == "file" and after.superseded is not None
    # The console's version is in force: 30,000 fen no longer makes an offer.
    user_id = person(db_url, "13900000130")
    assert post(client, shop, hospital("edit-1", morning, "13900000130")).status_code == 200
    assert offers_of(db_url, user_id) == []
    assert post(client, shop, hospital("edit-2", morning, "13900000130", 60_000)).status_code == 200
    (offer,) = offers_of(db_url, user_id)
    assert offer.rule_version == "db:1"


def test_gift_offers_keep_the_gift_limit_of_red_envelopes(
    client: Any, db_url: str, shop: dict[str, str], morning: datetime
) -> None:
    """The activation is the red envelope's: a fourth gift in force is declined (R12)."""
    from covernet.core.errors import CovernetError
    from covernet.identity.access import Principal
    from covernet.social import offers, service

    rule = offer_rules.file_rule("points-accident-gift")
    assert rule is not None
    ops_id, _ = add_staff(db_url, "ops-gifts", Role.ops)
    roomy = offer_rules.rule_yaml(rule.model_copy(update={"cap": offer_rules.Cap(max=10)}))
    assert "max: 10" in roomy
    with unit_of_work(db_url) as db:
        offer_rules.save_version(db, rule.code, roomy, by=ops_id, catalog=load_catalog(CATALOG))
    user_id = person(db_url, "13900000140")
    who = Principal(role=Role.customer, user_id=user_id, method="bearer")
    docs = {
        d["code"]: d["content_hash"] for d in documents(client, "accident-monthly")["documents"]
    }
    outcomes = []
    for n in range(4):
        day = morning + timedelta(days=n // 3)  # the daily cap is 3
        with clock.frozen(day):
            points = {"merchant": "m", "points": 10, "balance": 900}
            sent = post(
                client,
                shop,
                event(f"lim-{n}", "points.earned", day, mobile="13900000140", **points),
            )
            assert sent.status_code == 200
            offer = offers_of(db_url, user_id)[-1]
            try:
                with unit_of_work(db_url) as db:
                    offers.redeem(db, who, offer.token)
                    offers.activate(
                        db,
                        who,
                        offer.token,
                        service.ActivateIn(
                            name="王先生", id_number=APPLICANT_ID, acknowledgements=docs
                        ),
                        ip="127.0.0.1",
                        user_agent="test",
                    )
                outcomes.append("issued")
            except CovernetError as exc:
                outcomes.append(str((exc.detail or {}).get("reason")))
    assert outcomes == ["issued", "issued", "issued", "gift_limit_reached"]
    with unit_of_work(db_url) as db:
        gifts = db.scalars(select(Policy).where(Policy.customer_id == user_id)).all()
        assert len(gifts) == 3 and all(p.gifted for p in gifts)
