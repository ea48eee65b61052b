"""Partner batch issuance of embedded micro-policies, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from covernet.catalog.pricing import Insured, price
from covernet.catalog.spec import Gender
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.identity import service as identity
from covernet.identity.models import Role
from covernet.policies.partner import random_codes
from covernet.policies.partner_rules import embedding_problems, load_partners
from tests.conftest import CATALOG_DIR, bearer

URL = "/api/v1/partner/policies:batch"
# Bands of return-shipping: up to 100 yuan 0.50, up to 500 yuan 1.20, above 2 yuan.
BANDS = {5_000: 50, 10_000: 50, 10_001: 120, 50_000: 120, 80_000: 200}


def key_headers(db_url: str, name: str, role: Role = Role.partner, **extra: Any) -> dict[str, str]:
    with unit_of_work(db_url) as db:
        issued = identity.create_api_key(db, name=name, role=role, **extra)
    return {"X-API-Key": issued.key}


@pytest.fixture
def shop(db_url: str) -> dict[str, str]:
    return key_headers(db_url, "demo-shop")


def order(ref: str, amount: int = 5_000, **over: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "external_ref": ref,
        "product_code": "return-shipping",
        "plan_code": "standard",
        "order_amount_fen": amount,
        "holder_ref": f"buyer-{ref}",
    }
    item.update(over)
    return {k: v for k, v in item.items() if v is not None}


def policies_of(db_url: str, partner: str = "demo-shop") -> dict[str, Any]:
    from covernet.policies.models import Policy

    with unit_of_work(db_url) as db:
        rows = db.scalars(select(Policy).where(Policy.partner_code == partner))
        return {row.external_ref: row for row in rows}


def batch_entries(db_url: str) -> list[Any]:
    from covernet.audit.models import AuditEntry

    with unit_of_work(db_url) as db:
        return list(
            db.scalars(select(AuditEntry).where(AuditEntry.action == "policy.partner_batch"))
        )


def mixed_items() -> tuple[list[dict[str, Any]], dict[int, str]]:
    """1,000 items, every 10th bad in its own way; the bad ones' expected error codes."""
    bad_kinds = [
        ("invalid_item", lambda i: order(f"o{i}", holder_ref=None) | {"holder_ref": ""}),
        ("invalid_item", lambda i: order(f"o{i}", premium_fen=1)),
        ("invalid_item", lambda i: order(f"o{i}", amount=-5)),
        ("order_amount_required", lambda i: order(f"o{i}") | {"order_amount_fen": None}),
        ("unknown_plan", lambda i: order(f"o{i}", plan_code="gold")),
        ("product_not_allowed", lambda i: order(f"o{i}", product_code="flight-delay")),
        ("product_not_allowed", lambda i: order(f"o{i}", product_code="accident-monthly")),
        ("effective_date_too_early", lambda i: order(f"o{i}", effective_date="2000-01-01")),
        ("invalid_region", lambda i: order(f"o{i}", insured={"region": "999999"})),
        ("duplicate_in_batch", lambda i: order(f"o{i - 1}")),
    ]
    items, expected = [], {}
    amounts = list(BANDS)
    for i in range(1_000):
        if i % 10 == 9:
            code, make = bad_kinds[(i // 10) % len(bad_kinds)]
            items.append(make(i))
            expected[i] = code
        else:
            items.append(order(f"o{i}", amount=amounts[i % len(amounts)]))
    return items, expected


def test_a_mixed_batch_issues_the_good_items_and_names_what_is_wrong(
    client: Any, db_url: str, shop: dict[str, str]
) -> None:
    items, expected = mixed_items()
    response = client.post(URL, json={"items": items}, headers=shop)
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"]
    assert len(results) == 1_000
    assert body["issued"] == 900 and body["rejected"] == 100 and body["duplicates"] == 0
    for i, (item, result) in enumerate(zip(items, results, strict=True)):
        assert result["external_ref"] == item["external_ref"]  # input order
        if i in expected:
            assert result["status"] == "rejected", (i, result)
            assert result["error"] == expected[i], (i, result)
            assert result["message"]
        else:
            assert result["status"] == "issued", (i, result)
            assert result["premium_fen"] == BANDS[item["order_amount_fen"]]
            assert result["policy_no"].startswith(f"CN{clock.today():%Y%m%d}-")
    stored = policies_of(db_url)
    assert len(stored) == 900
    issued = {r["external_ref"]: r for r in results if r["status"] == "issued"}
    assert {ref: p.policy_no for ref, p in stored.items()} == {
        ref: r["policy_no"] for ref, r in issued.items()
    }
    assert body["premium_fen"] == sum(p.premium_fen for p in stored.values())
    one = stored["o0"]
    assert one.application_id is None and one.customer_id is None
    assert one.holder_ref == "buyer-o0" and one.status == "in_force"
    assert one.insurer_code == "anxin-pc" and one.line == "property"
    assert one.effective_date == clock.today()
    assert one.end_date == clock.today() + timedelta(days=89)
    assert len({p.verification_code for p in stored.values()}) == 900
    # One audit entry for the batch: counts and totals for settlement, no personal data.
    (entry,) = batch_entries(db_url)
    assert entry.detail["issued"] == 900 and entry.detail["rejected"] == 100
    assert entry.detail["premium_fen"] == body["premium_fen"]
    assert entry.detail["insurers"] == {
        "anxin-pc": {"policies": 900, "premium_fen": body["premium_fen"]}
    }
    assert entry.detail["rejections"]["product_not_allowed"] == 20
    assert "buyer-o0" not in str(entry.detail)


def test_repeating_a_batch_issues_nothing_new(
    client: Any, db_url: str, shop: dict[str, str]
) -> None:
    items = [order(f"r{i}", amount=list(BANDS)[i % 5]) for i in range(300)]
    items.append(order("bad", plan_code="gold"))
    first = client.post(URL, json={"items": items}, headers=shop).json()
    assert first["issued"] == 300
    again = client.post(URL, json={"items": items}, headers=shop)
    assert again.status_code == 200
    second = again.json()
    assert second["issued"] == 0 and second["duplicates"] == 300 and second["rejected"] == 1
    assert second["premium_fen"] == 0
    for a, b in zip(first["results"], second["results"], strict=True):
        assert a["external_ref"] == b["external_ref"] and a["status"] == b["status"]
        if a["status"] == "issued":
            assert (b["policy_no"], b["premium_fen"], b["duplicate"]) == (
                a["policy_no"],
                a["premium_fen"],
                True,
            )
    assert len(policies_of(db_url)) == 300
    assert len(batch_entries(db_url)) == 1  # nothing issued, nothing to settle


def test_a_repeat_answers_first_even_if_the_item_would_now_be_rejected(
    client: Any, shop: dict[str, str]
) -> None:
    first = client.post(URL, json={"items": [order("x1")]}, headers=shop).json()["results"][0]
    late = order("x1", effective_date="2000-01-01")  # today: too early; issued before
    again = client.post(URL, json={"items": [late]}, headers=shop).json()["results"][0]
    assert again["status"] == "issued" and again["duplicate"] is True
    assert again["policy_no"] == first["policy_no"]


def test_a_reference_reused_for_another_holder_is_rejected(
    client: Any, db_url: str, shop: dict[str, str]
) -> None:
    first = client.post(URL, json={"items": [order("x2")]}, headers=shop).json()["results"][0]
    other = order("x2", holder_ref="someone-else")
    result = client.post(URL, json={"items": [other]}, headers=shop).json()["results"][0]
    assert result["status"] == "rejected" and result["error"] == "external_ref_conflict"
    assert result["policy_no"] == first["policy_no"]
    assert policies_of(db_url)["x2"].holder_ref == "buyer-x2"


def test_identical_batches_sent_at_once_issue_each_reference_once(
    client: Any, db_url: str, shop: dict[str, str]
) -> None:
    items = [order(f"c{i}", amount=list(BANDS)[i % 5]) for i in range(400)]
    answers: list[Any] = [None] * 3
    start = threading.Barrier(3)

    def send(k: int) -> None:
        start.wait()
        answers[k] = client.post(URL, json={"items": items}, headers=shop)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(a is not None and a.status_code == 200 for a in answers), answers
    bodies = [a.json() for a in answers]
    assert sum(b["issued"] for b in bodies) == 400
    assert sum(b["duplicates"] for b in bodies) == 800
    numbers = [{r["external_ref"]: r["policy_no"] for r in b["results"]} for b in bodies]
    assert numbers[0] == numbers[1] == numbers[2]
    stored = policies_of(db_url)
    assert len(stored) == 400
    assert {ref: p.policy_no for ref, p in stored.items()} == numbers[0]


def test_flight_delay_needs_the_insured_and_is_priced_from_the_catalog(
    client: Any, db_url: str, shipped_catalog: Any
) -> None:
    air = key_headers(db_url, "demo-air")
    departs = (clock.today() + timedelta(days=30)).isoformat()
    insured = {"birth_date": "1990-05-01", "gender": "F", "region": "310000"}
    items = [
        order("MU5101", product_code="flight-delay", amount=None, insured=insured),
        order(
            "MU5102",
            product_code="flight-delay",
            amount=None,
            insured=insured,
            effective_date=departs,
        ),
        order("MU5103", product_code="flight-delay", amount=None),
        order("MU5104", product_code="flight-delay", amount=None, insured=insured | {"x": 1}),
        order("SHOP1"),  # return shipping is not demo-air's
        order(
            "MU5105",
            product_code="flight-delay",
            amount=None,
            insured=insured,
            effective_date="2999-01-01",
        ),
    ]
    response = client.post(URL, json={"items": items}, headers=air)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["issued", "issued"] + ["rejected"] * 4
    assert [r.get("error") for r in results[2:]] == [
        "birth_date_required",
        "invalid_item",
        "product_not_allowed",
        "effective_date_too_late",
    ]
    product = next(p for p in shipped_catalog.products if p.code == "flight-delay")
    expected = price(
        product,
        plan_code="standard",
        insured=Insured(date(1990, 5, 1), Gender("F"), "310000"),
        quote_date=clock.today(),
    )
    assert results[0]["premium_fen"] == expected.premium_fen == 2000
    stored = policies_of(db_url, "demo-air")
    assert stored["MU5102"].effective_date.isoformat() == departs
    assert stored["MU5102"].end_date == date.fromisoformat(departs) + timedelta(days=1)
    assert stored["MU5101"].sum_insured_fen == 20000


def test_premiums_equal_the_catalog_price(client: Any, shop: dict[str, str]) -> None:
    from covernet.catalog.loader import load_catalog

    product = next(p for p in load_catalog(CATALOG_DIR).products if p.code == "return-shipping")
    items = [order(f"p{amount}", amount=amount) for amount in (0, *BANDS, 10**9)]
    results = client.post(URL, json={"items": items}, headers=shop).json()["results"]
    for item, result in zip(items, results, strict=True):
        expected = price(
            product,
            plan_code="standard",
            insured=Insured(None, None, "110000"),
            quote_date=clock.today(),
            order_amount_fen=item["order_amount_fen"],
        )
        assert result["premium_fen"] == expected.premium_fen, item


def test_more_than_1000_items_is_refused_naming_the_limit(
    client: Any, db_url: str, shop: dict[str, str]
) -> None:
    items = [order(f"big{i}") for i in range(1_001)]
    response = client.post(URL, json={"items": items}, headers=shop)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "too_many_items" and "1,000" in body["message"]
    assert body["detail"]["limit"] == 1_000
    assert policies_of(db_url) == {}
    empty = client.post(URL, json={"items": []}, headers=shop)
    assert empty.status_code == 400 and empty.json()["error"] == "no_items"
    malformed = client.post(URL, content=b"[1, 2", headers=shop)
    assert malformed.status_code == 422
    not_a_batch = client.post(URL, json=[order("a")], headers=shop)
    assert not_a_batch.status_code == 422


def test_only_partner_keys_of_a_declared_partner_may_issue(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    body = {"items": [order("k1")]}
    insurer = key_headers(db_url, "anxin", Role.insurer, insurer_code="anxin-pc")
    assert client.post(URL, json=body, headers=insurer).status_code == 403
    token = bearer(client, customer["mobile"], customer["password"])
    assert client.post(URL, json=body, headers=token).status_code == 403
    assert client.post(URL, json=body).status_code == 401
    stranger = key_headers(db_url, "not-a-partner")
    response = client.post(URL, json=body, headers=stranger)
    assert response.status_code == 403 and response.json()["error"] == "unknown_partner"
    with unit_of_work(db_url) as db:
        from covernet.policies.models import Policy

        assert db.scalar(select(func.count()).select_from(Policy)) == 0


def test_shipped_partners_list_only_embeddable_products(shipped_catalog: Any) -> None:
    rules = load_partners(CATALOG_DIR / "partners.yaml")
    products = {p.code: p for p in shipped_catalog.products}
    assert rules.partners
    for partner in rules.partners:
        for code in partner.products:
            assert embedding_problems(products[code], rules.micro) == [], code
    for code in ("accident-monthly", "travel-medical", "annuity-participating", "ci-lifetime"):
        assert embedding_problems(products[code], rules.micro), code


def test_random_codes_use_the_readable_alphabet() -> None:
    codes = random_codes(2_000, 8)
    assert len(codes) == 2_000 and all(len(c) == 8 for c in codes)
    assert set("".join(codes)) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert len(set(codes)) == 2_000


def test_bulk_ids_are_uuid7_like_new_id() -> None:
    import uuid

    from covernet.core.ids import new_id
    from covernet.policies.partner import new_ids

    ids = new_ids(500)
    assert len(set(ids)) == 500
    for value in [*ids[:50], new_id()]:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == value
    assert abs((uuid.UUID(ids[0]).int >> 80) - (uuid.UUID(new_id()).int >> 80)) < 5_000  # ms


def test_insurers_hear_of_each_batch_once_and_genuine_codes_verify(
    client: Any, db_url: str, shop: dict[str, str]
) -> None:
    """R19: one outbox event per insurer per batch, carrying every new policy; a repeat
    of the batch adds none.  The policies verify publicly like any other."""
    from covernet.integration.models import OutboxRow

    items = [order(f"s{i}") for i in range(20)]
    first = client.post(URL, json={"items": items}, headers=shop).json()
    client.post(URL, json={"items": items}, headers=shop)
    with unit_of_work(db_url) as db:
        rows = list(db.scalars(select(OutboxRow)))
        assert [r.topic for r in rows] == ["policies.partner_batch"]
        assert rows[0].insurer_code == "anxin-pc"
        sent = {p["policy_no"] for p in rows[0].payload["policies"]}
        assert sent == {r["policy_no"] for r in first["results"]}
        code = next(iter(policies_of(db_url).values())).verification_code
    page = client.get(f"/api/v1/verify/{code}")
    assert page.status_code == 200, page.text
