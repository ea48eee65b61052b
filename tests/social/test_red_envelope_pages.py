"""The red envelope pages: sending one from the form (only giftable plans, figures before
paying, one envelope per double tap, named errors), the share page, grabbing and
activating by form, the sender's share link and list of grabs; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading
from typing import Any

from sqlalchemy import func, select

from covernet.core import i18n
from covernet.core.db import unit_of_work
from covernet.core.idempotency import IdempotencyRecord
from covernet.identity import service as identity
from covernet.identity.models import Role
from covernet.payments.models import Payment, PaymentStatus
from covernet.policies.models import Policy
from covernet.social import envelope_pages
from covernet.social.models import RedEnvelope
from tests.conftest import sign_in_with_cookie, staff_headers
from tests.policies.buying import pay
from tests.social.test_red_envelopes import FRIEND_ID, acks, opened


def test_grab_and_activate_by_form(
    client: Any, anon_client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    env = opened(client, customer_headers, shares=2, greeting="生日快乐")
    path = f"/e/{env['envelope_id']}"
    page = anon_client.get(path)
    assert page.status_code == 200 and "生日快乐" in page.text and "<script>" not in page.text
    assert f'action="{path}/grab"' in page.text
    english = anon_client.get(path + "?lang=en")
    assert "Grab a share" in english.text
    with unit_of_work(db_url) as db:
        user = identity.register_customer(
            db, mobile="13730000001", password="s3cret-pass", name="赵六"
        )
    csrf = sign_in_with_cookie(anon_client, db_url, user.id)
    grabbed = anon_client.post(f"{path}/grab", data={"csrf_token": csrf}, follow_redirects=True)
    assert grabbed.status_code == 200 and f'action="{path}/activate"' in grabbed.text
    # Every document confirmed is shown in full first (R13): the exclusions' own text.
    assert (
        "Self-inflicted injury" in grabbed.text and "How we process personal data" in grabbed.text
    )
    hashes = acks(anon_client)
    form = {"csrf_token": csrf, "name": "赵六", "id_number": FRIEND_ID}
    form.update({f"doc_hash.{code}": h for code, h in hashes.items()})
    unticked = anon_client.post(f"{path}/activate", data=form)
    assert unticked.status_code == 400 and 'role="alert"' in unticked.text
    form.update({f"confirm.{code}": "yes" for code in hashes})
    done = anon_client.post(f"{path}/activate", data=form)
    assert done.status_code == 200, done.text
    assert re.search(r'role="status"', done.text)
    with unit_of_work(db_url) as db:
        policy = db.scalars(select(Policy)).one()
        assert policy.gifted and policy.customer_id == user.id
    sender = client.get(path, headers=customer_headers)
    assert 'data-grab-status="activated"' in sender.text and "赵六" not in sender.text


# Sending an envelope from the page ------------------------------------------------------


def _count(db_url: str, model: Any) -> int:
    with unit_of_work(db_url) as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def _form(page_text: str, csrf: str, **over: str) -> dict[str, str]:
    token = re.search(r'name="form_token" value="([^"]+)"', page_text)
    assert token is not None
    form = {
        "csrf_token": csrf,
        "form_token": token.group(1),
        "option": "accident-monthly:basic",
        "shares": "3",
        "split": "equal",
        "greeting": "中秋快乐",
        "intent": "pay",
    }
    form.update(over)
    return form


def _options(text: str) -> set[str]:
    return set(re.findall(r'name="option" value="([^"]+)"', text))


def test_send_form_lists_only_giftable_plans_and_previews(
    client: Any, customer: dict[str, str], db_url: str
) -> None:
    csrf = sign_in_with_cookie(client, db_url, customer["id"])
    page = client.get("/envelopes/new")
    assert page.status_code == 200, page.text
    # Only the plans R12 admits (the accident product's two plans), nothing property,
    # critical illness or long-term; the default preview is 3 equal shares of the first.
    assert _options(page.text) == {"accident-monthly:basic", "accident-monthly:plus"}
    assert re.search(r'value="accident-monthly:basic" required checked', page.text)
    assert "¥15.00" in page.text and "¥300,000.00" in page.text
    assert "<script>" not in page.text and "js/envelope.js" in page.text
    english = client.get("/envelopes/new?lang=en")
    assert "Send an insurance red envelope" in english.text and "Lucky draw" in english.text
    plus = client.get("/envelopes/new?product=accident-monthly&plan=plus&shares=2")
    assert re.search(r'value="accident-monthly:plus" required checked', plus.text)
    assert "¥32.00" in plus.text  # 2 × 16 yuan
    # A link to cover that may not be given says why (the service's own R12 check).
    refused = client.get("/envelopes/new?product=ci-lifetime")
    assert refused.status_code == 200 and 'role="alert"' in refused.text
    assert "R12" in refused.text
    # The preview button (no script): figures for 4 random shares, nothing written.
    preview = client.post(
        "/envelopes/new",
        data=_form(page.text, csrf, shares="4", split="random", intent="preview"),
    )
    assert preview.status_code == 200 and "¥20.00" in preview.text
    assert re.search(r'data-preview-row="random">', preview.text)  # shown, not hidden
    assert "¥60,000.00" in preview.text  # at least a fifth of a 300,000 yuan share
    assert _count(db_url, RedEnvelope) == 0


def test_send_creates_one_envelope_and_goes_to_pay(
    client: Any, anon_client: Any, customer: dict[str, str], db_url: str
) -> None:
    csrf = sign_in_with_cookie(client, db_url, customer["id"])
    product = client.get("/products/accident-monthly")
    assert 'href="/envelopes/new?product=accident-monthly" data-send-envelope' in product.text
    assert "data-send-envelope" not in client.get("/products/medical-million").text
    page = client.get(product.text.split("data-send-envelope")[0].rsplit('href="', 1)[1][:-2])
    form = _form(page.text, csrf, split="random")
    first = client.post("/envelopes/new", data=form, follow_redirects=False)
    assert first.status_code == 303, first.text
    assert re.fullmatch(r"(https?://[^/]+)?/sandbox/pay/[0-9a-f-]{36}", first.headers["location"])
    again = client.post("/envelopes/new", data=form, follow_redirects=False)  # a double tap
    assert again.status_code == 303 and again.headers["location"] == first.headers["location"]
    with unit_of_work(db_url) as db:
        (envelope,) = db.scalars(select(RedEnvelope)).all()
        payment = db.get(Payment, envelope.payment_id)
        assert payment is not None and payment.return_path == f"/e/{envelope.id}"
        assert envelope.sender_id == customer["id"] and envelope.shares_total == 3
        assert envelope.split == "random" and envelope.greeting == "中秋快乐"
        assert envelope.premium_fen == 1500 and envelope.sum_insured_fen == 3 * 30_000_000
        envelope_id, payment_id = envelope.id, envelope.payment_id
    path = f"/e/{envelope_id}"
    unpaid = client.get(path)
    assert 'data-payment-status="pending"' in unpaid.text and "/sandbox/pay/" in unpaid.text
    pay(client, payment_id)
    paid = client.get(path)
    assert 'data-payment-status="succeeded"' in paid.text and "已支付" in paid.text
    assert f'id="share-url" type="url" value="https://testserver{path}" readonly' in paid.text
    assert 'data-copy="share-url"' in paid.text and "/sandbox/pay/" not in paid.text
    # The share link is the sender's to copy: a visitor sees the grab button, not the link.
    visitor = anon_client.get(path)
    assert 'id="share-url"' not in visitor.text and f'action="{path}/grab"' in visitor.text
    # Paid again later with the same form: the envelope's page, not a second payment.
    later = client.post("/envelopes/new", data=form, follow_redirects=False)
    assert later.headers["location"] == path and _count(db_url, RedEnvelope) == 1
    sent = client.get("/envelopes")
    assert f'href="{path}"' in sent.text and 'data-envelope-status="open"' in sent.text
    assert 'href="/envelopes"' in client.get("/account").text


def test_send_errors_name_the_problem_and_write_nothing(
    client: Any, customer: dict[str, str], db_url: str
) -> None:
    csrf = sign_in_with_cookie(client, db_url, customer["id"])
    page = client.get("/envelopes/new")
    cases = [
        ({"shares": "0"}, "红包份数须是 1 到 100 之间的整数"),
        ({"shares": "101"}, "红包份数须是 1 到 100 之间的整数"),
        ({"shares": "two"}, "红包份数须是 1 到 100 之间的整数"),
        ({"split": "biggest"}, "请选择平均分或拼手气"),
        ({"greeting": "福" * 61}, "祝福语须为 1 到 60 个字"),
        ({"option": ""}, "请选择要赠送的保障"),
        ({"option": "ci-lifetime:standard"}, "保障期限不能超过一年（R12）"),
        ({"option": "screen-guard:phone-3k"}, "只有意外险或健康险可以作为红包赠送（R12）"),
        ({"option": "accident-monthly:gold"}, "请选择本产品提供的保障计划"),
    ]
    for over, message in cases:
        answer = client.post("/envelopes/new", data=_form(page.text, csrf, **over))
        assert answer.status_code in (400, 404), (over, answer.status_code)
        alert = re.search(r'role="alert" id="form-error">([^<]+)<', answer.text)
        assert alert is not None and message in alert.group(1), (over, answer.text[:200])
        kept = over.get("greeting", "中秋快乐")[:240]
        assert f'value="{kept}"' in answer.text  # the values typed are kept
    assert 'name="shares" type="number"' in answer.text
    assert _count(db_url, RedEnvelope) == 0 and _count(db_url, Payment) == 0
    assert _count(db_url, IdempotencyRecord) == 0  # a refused form keeps no key either


def test_send_is_for_signed_in_customers(client: Any, anon_client: Any, db_url: str) -> None:
    anon = anon_client.get(
        "/envelopes/new?product=accident-monthly&plan=basic", follow_redirects=False
    )
    assert anon.status_code == 303
    assert anon.headers["location"] == (
        "/login?next=/envelopes/new%3Fproduct%3Daccident-monthly%26plan%3Dbasic"
    )
    assert anon_client.get("/envelopes", follow_redirects=False).headers["location"] == (
        "/login?next=/envelopes"
    )
    ops = staff_headers(client, db_url, "ops-env", Role.ops)
    refused = client.get("/envelopes/new", headers={**ops, "Accept": "text/html"})
    assert refused.status_code == 403 and "只有客户账户可以发保险红包" in refused.text
    posted = client.post(
        "/envelopes/new",
        headers={**ops, "Accept": "text/html"},
        data={"option": "accident-monthly:basic", "shares": "2", "split": "equal"},
    )
    assert posted.status_code == 403 and _count(db_url, RedEnvelope) == 0


def test_payment_states_are_worded_in_both_languages() -> None:
    for status in PaymentStatus:
        key = envelope_pages.payment_key(status.value)
        zh, en = i18n.translate(key, "zh"), i18n.translate(key, "en")
        assert zh != key and en != key and zh != en, status
    assert envelope_pages.payment_key(None) == "envelope.payment.pending"


def test_two_taps_at_once_make_one_envelope(
    app: Any, client: Any, customer: dict[str, str], db_url: str
) -> None:
    from starlette.testclient import TestClient

    csrf = sign_in_with_cookie(client, db_url, customer["id"])
    form = _form(client.get("/envelopes/new").text, csrf)
    barrier = threading.Barrier(2)
    answers: list[str] = []

    def tap() -> None:
        with TestClient(app, base_url="https://testserver") as twin:
            twin.cookies.update(client.cookies)
            barrier.wait()
            answer = twin.post("/envelopes/new", data=form, follow_redirects=False)
            answers.append(f"{answer.status_code} {answer.headers.get('location')}")

    threads = [threading.Thread(target=tap) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == 2 and answers[0] == answers[1] and answers[0].startswith("303 ")
    assert _count(db_url, RedEnvelope) == 1 and _count(db_url, Payment) == 1
