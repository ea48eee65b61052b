"""The purchase pages over HTTP (no JavaScript): quote → apply form → pay → status →
policy, errors next to their field with the input kept, a double submit, ownership; on
SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import func, select

from covernet.core.db import unit_of_work
from covernet.policies.models import Application, TraceEvent
from tests.conftest import sign_in_with_cookie
from tests.policies.buying import APPLICANT_ID, pay, quote

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
CONFIRMS = re.compile(r'name="confirm\.([a-z_]+)"')


def _form(page: str) -> dict[str, Any]:
    """The hidden inputs of the apply form (csrf, form token, hashes, shown times)."""
    fields: dict[str, Any] = {}
    for name, value in HIDDEN.findall(page):
        value = html.unescape(value)
        if name in fields:  # repeated names (suitability warnings) become lists
            prior = fields[name]
            fields[name] = [*prior, value] if isinstance(prior, list) else [prior, value]
        else:
            fields[name] = value
    return fields


def _filled(page: str, **over: Any) -> dict[str, Any]:
    """Everything a careful buyer would fill in and tick on the page."""
    fields = _form(page)
    fields.update({f"confirm.{code}": "yes" for code in CONFIRMS.findall(page)})
    fields.update(
        applicant_name="张三",
        applicant_id_number=APPLICANT_ID,
        relationship="self",
        beneficiary_mode="statutory",
    )
    fields.update(over)
    return {k: v for k, v in fields.items() if v is not None}


def _apply_page(client: Any, quote_id: str, lang: str = "") -> str:
    page = client.get(f"/apply/{quote_id}{lang}")
    assert page.status_code == 200, page.text
    return str(page.text)


def _count(db_url: str, model: Any) -> int:
    with unit_of_work(db_url) as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_a_full_purchase_through_the_pages(
    client: Any, anon_client: Any, customer: dict[str, str], db_url: str
) -> None:
    # Anonymous: the quote's 投保 action signs in first and comes back.
    anon_quote = quote(anon_client, {})
    away = anon_client.get(f"/apply/{anon_quote['quote_id']}", follow_redirects=False)
    assert away.status_code == 303
    assert away.headers["location"] == f"/login?next=/apply/{anon_quote['quote_id']}"

    csrf = sign_in_with_cookie(client, db_url, customer["id"])
    product = client.post(
        "/products/accident-monthly/quote",
        data={
            "csrf_token": csrf,
            "plan_code": "basic",
            "birth_date": "1990-05-20",
            "gender": "M",
            "region": "310000",
        },
    )
    assert product.status_code == 200, product.text
    found = re.search(r'href="/apply/([0-9a-f-]{36})"', product.text)
    assert found, "the quote card has no 投保 action"
    quote_id = found.group(1)
    assert "投保" in product.text

    page = _apply_page(client, quote_id)
    for title in ("保险条款重要内容", "责任免除", "投保提示书", "个人信息处理", "确认投保信息"):
        assert title in page
    assert "checked" not in re.sub(r'name="(relationship|beneficiary_mode)"[^>]*checked', "", page)
    form = _filled(page)
    assert set(k for k in form if k.startswith("doc_hash.")) == {
        "doc_hash.terms",
        "doc_hash.exclusions",
        "doc_hash.disclosures",
        "doc_hash.privacy",
        "doc_hash.sensitive_data",
    }
    sent = client.post(f"/apply/{quote_id}", data=form, follow_redirects=False)
    assert sent.status_code == 303, sent.text
    assert "/sandbox/pay/" in sent.headers["location"]
    payment_id = sent.headers["location"].rsplit("/", 1)[-1]
    with unit_of_work(db_url) as db:
        app = db.scalars(select(Application)).one()
        app_id = app.id
        steps = {(e.kind, e.step) for e in db.scalars(select(TraceEvent))}
    assert ("confirmed", "terms") in steps and ("shown", "sensitive_data") in steps

    waiting = client.get(f"/applications/{app_id}")
    assert waiting.status_code == 200
    assert 'data-progress="pay" aria-current="step"' in waiting.text
    assert f'data-poll="/api/v1/applications/{app_id}"' in waiting.text
    assert "<noscript>" in waiting.text

    pay(client, payment_id)
    done = client.get(f"/applications/{app_id}")
    assert 'data-progress="issue" aria-current="step"' in done.text
    policy_link = re.search(r'href="/policies/([0-9a-f-]{36})" data-policy-link', done.text)
    assert policy_link and "data-poll" not in done.text

    mine = client.get("/policies")
    assert mine.status_code == 200 and "安心月月意外险" in mine.text
    assert f"/policies/{policy_link.group(1)}" in mine.text
    policy = client.get(f"/policies/{policy_link.group(1)}")
    assert policy.status_code == 200
    assert "不保证续保" in policy.text and "犹豫期至" in policy.text
    assert f'href="/api/v1/policies/{policy_link.group(1)}/document"' in policy.text
    assert 'href="/verify/' in policy.text
    english = client.get(f"/policies/{policy_link.group(1)}?lang=en")
    assert "Renewal is not guaranteed" in english.text or "not guaranteed" in english.text
    account = client.get("/account")
    assert 'href="/policies"' in account.text


def test_a_missing_confirmation_is_shown_next_to_its_field_with_inputs_kept(
    client: Any, customer: dict[str, str], db_url: str
) -> None:
    sign_in_with_cookie(client, db_url, customer["id"])
    q = quote(client, {"X-CSRF-Token": _csrf(client)})
    page = _apply_page(client, q["quote_id"])
    form = _filled(page)
    del form["confirm.exclusions"]
    refused = client.post(f"/apply/{q['quote_id']}", data=form)
    assert refused.status_code == 400
    text = refused.text
    assert 'data-error-step="exclusions"' in text
    assert 'id="error-confirm-exclusions"' in text
    exclusions_box = re.search(r'<input type="checkbox" name="confirm\.exclusions"[^>]*>', text)
    assert exclusions_box and 'aria-invalid="true"' in exclusions_box.group(0)
    assert "checked" not in exclusions_box.group(0)
    terms_box = re.search(r'<input type="checkbox" name="confirm\.terms"[^>]*>', text)
    assert terms_box and "checked" in terms_box.group(0)  # what the buyer ticked stays ticked
    assert 'value="张三"' in text and f'value="{APPLICANT_ID}"' in text
    assert _form(text)["form_token"] == form["form_token"]
    assert _count(db_url, Application) == 0

    # A wrong ID number is named next to the ID field, in the page language.
    wrong = client.post(
        f"/apply/{q['quote_id']}?lang=en",
        data={**form, "confirm.exclusions": "yes", "applicant_id_number": "110105194912310021"},
    )
    assert wrong.status_code == 400
    assert 'id="error-applicant-id-number"' in wrong.text
    assert "ID number" in wrong.text

    fixed = client.post(
        f"/apply/{q['quote_id']}",
        data={**form, "confirm.exclusions": "yes"},
        follow_redirects=False,
    )
    assert fixed.status_code == 303
    assert _count(db_url, Application) == 1


def _csrf(client: Any) -> str:
    account = client.get("/account")
    found = re.search(r'name="csrf-token" content="([^"]+)"', account.text)
    assert found
    return found.group(1)


def test_health_questions_and_suitability_on_the_page(
    client: Any, customer: dict[str, str], db_url: str
) -> None:
    sign_in_with_cookie(client, db_url, customer["id"])
    headers = {"X-CSRF-Token": _csrf(client)}
    q = quote(
        client,
        headers,
        product_code="annuity-participating",
        plan_code="unit-10k",
        payment="single",
    )
    page = _apply_page(client, q["quote_id"])
    assert 'name="uncertainty_statement"' in page and "不确定性" in page
    form = _filled(page)
    missing = client.post(f"/apply/{q['quote_id']}", data=form)
    assert missing.status_code == 400
    assert 'data-error-step="statement"' in missing.text
    assert 'id="error-uncertainty-statement"' in missing.text

    from covernet.catalog.disclosures import UNCERTAINTY_STATEMENT

    typed = {**form, "uncertainty_statement": UNCERTAINTY_STATEMENT}
    warned = client.post(f"/apply/{q['quote_id']}", data=typed)
    assert warned.status_code == 400
    assert "我已了解，仍要继续" in warned.text
    assert 'name="suitability_continue" value="yes"' in warned.text
    assert f">{UNCERTAINTY_STATEMENT}</textarea>" in warned.text
    warnings = _form(warned.text)["suitability_warning"]
    going_on = client.post(
        f"/apply/{q['quote_id']}",
        data={**typed, "suitability_warning": warnings, "suitability_continue": "yes"},
        follow_redirects=False,
    )
    assert going_on.status_code == 303, going_on.text
    with unit_of_work(db_url) as db:
        app = db.scalars(select(Application)).one()
        assert sorted(app.suitability_warnings) == sorted(
            warnings if isinstance(warnings, list) else [warnings]
        )

    # Health questions: each answered explicitly, nothing pre-selected (R8).
    medical = quote(client, headers, product_code="medical-million", plan_code="standard")
    page = _apply_page(client, medical["quote_id"])
    radios = re.findall(r'<input type="radio" name="health\.[^"]+"[^>]*>', page)
    assert len(radios) >= 8 and not any("checked" in r for r in radios)
    unanswered = client.post(f"/apply/{medical['quote_id']}", data=_filled(page))
    assert unanswered.status_code == 400
    assert 'data-error-step="health"' in unanswered.text
    assert 'id="error-health-' in unanswered.text


def test_a_double_submit_makes_one_application(
    client: Any, customer: dict[str, str], db_url: str
) -> None:
    sign_in_with_cookie(client, db_url, customer["id"])
    q = quote(client, {"X-CSRF-Token": _csrf(client)})
    form = _filled(_apply_page(client, q["quote_id"]))
    first = client.post(f"/apply/{q['quote_id']}", data=form, follow_redirects=False)
    second = client.post(f"/apply/{q['quote_id']}", data=form, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert _count(db_url, Application) == 1
    # The form shown again (a new token) finds the application made from the quote.
    again = client.post(
        f"/apply/{q['quote_id']}", data={**form, "form_token": "another"}, follow_redirects=False
    )
    assert again.status_code == 303 and again.headers["location"].startswith("/applications/")
    shown = client.get(f"/apply/{q['quote_id']}", follow_redirects=False)
    assert shown.status_code == 303 and shown.headers["location"].startswith("/applications/")
    assert _count(db_url, Application) == 1


def test_another_customers_application_and_policy_are_not_found(
    client: Any, anon_client: Any, customer: dict[str, str], db_url: str
) -> None:
    sign_in_with_cookie(client, db_url, customer["id"])
    q = quote(client, {"X-CSRF-Token": _csrf(client)})
    sent = client.post(
        f"/apply/{q['quote_id']}",
        data=_filled(_apply_page(client, q["quote_id"])),
        follow_redirects=False,
    )
    pay(client, sent.headers["location"].rsplit("/", 1)[-1])
    with unit_of_work(db_url) as db:
        app = db.scalars(select(Application)).one()
        app_id = app.id
    policy_id = re.search(
        r'href="/policies/([0-9a-f-]{36})"', client.get(f"/applications/{app_id}").text
    )
    assert policy_id

    from covernet.identity import service

    with unit_of_work(db_url) as db:
        other = service.register_customer(
            db, mobile="13700001111", password="other-pass-1", name="李四"
        )
        other_id = other.id
    sign_in_with_cookie(anon_client, db_url, other_id)
    for path in (
        f"/applications/{app_id}",
        f"/policies/{policy_id.group(1)}",
        f"/apply/{q['quote_id']}",
    ):
        answer = anon_client.get(path, headers={"Accept": "text/html"})
        assert answer.status_code == 404, path
        assert "text/html" in answer.headers["content-type"]
    assert policy_id.group(1) not in anon_client.get("/policies").text


def _answers(page: str, yes: str | None = None) -> dict[str, str]:
    codes = sorted(set(re.findall(r'name="health\.([^"]+)"', page)))
    return {f"health.{c}": "yes" if c == yes else "no" for c in codes}


def test_declined_and_referred_say_what_happens_next(
    client: Any, customer: dict[str, str], db_url: str
) -> None:
    sign_in_with_cookie(client, db_url, customer["id"])
    headers = {"X-CSRF-Token": _csrf(client)}
    shown = {}
    for yes in ("major-diagnoses", "pending-hospital"):
        q = quote(client, headers, product_code="medical-million", plan_code="standard")
        page = _apply_page(client, q["quote_id"])
        sent = client.post(
            f"/apply/{q['quote_id']}",
            data=_filled(page, **_answers(page, yes)),
            follow_redirects=False,
        )
        assert sent.status_code == 303, sent.text
        pay(client, sent.headers["location"].rsplit("/", 1)[-1])
        with unit_of_work(db_url) as db:
            app = db.scalars(select(Application).where(Application.quote_id == q["quote_id"])).one()
            app_id = app.id
        shown[yes] = client.get(f"/applications/{app_id}").text
    declined = shown["major-diagnoses"]
    assert 'data-progress="underwrite" aria-current="step"' in declined
    assert "progress__step--failed" in declined
    assert "根据健康告知的回答，本产品不能承保" in declined and "全额退还" in declined
    assert "data-poll" not in declined
    referred = shown["pending-hospital"]
    assert "核保人员人工审核" in referred and "个工作日内" in referred
    assert 'data-progress="underwrite" aria-current="step"' in referred


CI = {
    "product_code": "ci-lifetime",
    "plan_code": "standard",
    "term": "whole-life",
    "payment": "pay20",
}
CI_NO = {
    "serious-diagnoses": False,
    "screening-findings": False,
    "pending-hospital": False,
    "infant-conditions": False,
}


def _bought(client: Any, headers: dict[str, str], **over: Any) -> str:
    from tests.policies.buying import application, apply

    q = quote(client, headers, **over)
    answers = {"health_answers": CI_NO} if over else {}
    made = apply(client, headers, application(client, q, **answers))
    assert made.status_code == 201, made.text
    pay(client, made.json()["payment_id"])
    return str(client.get("/api/v1/policies", headers=headers).json()[0]["policy_id"])


def test_cancel_within_cooling_off_on_the_policy_page(
    client: Any, customer: dict[str, str], customer_headers: dict[str, str], db_url: str
) -> None:
    policy_id = _bought(client, customer_headers, **CI)
    csrf = sign_in_with_cookie(client, db_url, customer["id"])
    page = client.get(f"/policies/{policy_id}").text
    assert "犹豫期内解除合同" in page and "data-cancel" in page
    assert "所需材料" in page and "天内退回" in page  # conditions, documents, time at once
    done = client.post(f"/policies/{policy_id}/cancel", data={"csrf_token": csrf})
    assert done.status_code == 200 and "已在犹豫期内解除合同" in done.text
    assert 'data-refund-status="requested"' in done.text
    again = client.post(f"/policies/{policy_id}/cancel", data={"csrf_token": csrf})
    assert again.status_code == 409 and "data-cancel" not in again.text
    assert client.post(f"/policies/{policy_id}/cancel", data={}).status_code == 403  # no CSRF


def test_surrender_on_the_policy_page_needs_the_amount_shown(
    client: Any, customer: dict[str, str], customer_headers: dict[str, str], db_url: str
) -> None:
    policy_id = _bought(client, customer_headers)
    csrf = sign_in_with_cookie(client, db_url, customer["id"])
    page = client.get(f"/policies/{policy_id}").text
    amount = re.search(r'name="amount_fen" value="(\d+)"', page)
    assert amount and "data-surrender" in page and "保障尚未开始" in page
    stale = client.post(
        f"/policies/{policy_id}/surrender", data={"csrf_token": csrf, "amount_fen": "1"}
    )
    assert stale.status_code == 409
    done = client.post(
        f"/policies/{policy_id}/surrender",
        data={"csrf_token": csrf, "amount_fen": amount.group(1)},
    )
    assert done.status_code == 200 and "已办理退保" in done.text
    assert (
        client.get(f"/api/v1/policies/{policy_id}", headers=customer_headers).json()["status"]
        == "surrendered"
    )


def test_renewal_from_the_policy_page_goes_through_the_apply_form(
    client: Any, customer: dict[str, str], customer_headers: dict[str, str], db_url: str
) -> None:
    from datetime import timedelta

    from covernet.core import clock

    policy_id = _bought(client, customer_headers)
    csrf = sign_in_with_cookie(client, db_url, customer["id"])
    assert "/renew" not in client.get(f"/policies/{policy_id}").text  # not open yet
    with clock.shifted(timedelta(days=27)):
        csrf = sign_in_with_cookie(client, db_url, customer["id"])
        page = client.get(f"/policies/{policy_id}").text
        assert f"/policies/{policy_id}/renew" in page and "不会自动扣费" in page
        moved = client.post(
            f"/policies/{policy_id}/renew", data={"csrf_token": csrf}, follow_redirects=False
        )
        assert moved.status_code == 303 and f"renewal_of={policy_id}" in moved.headers["location"]
        form = client.get(moved.headers["location"]).text
        assert f'name="renewal_of" value="{policy_id}"' in form
        done = client.post(
            moved.headers["location"].split("?")[0], data=_filled(form), follow_redirects=False
        )
        assert done.status_code == 303, done.text
        with unit_of_work(db_url) as db:
            renewing = db.scalars(select(Application).order_by(Application.created_at)).all()[-1]
            assert renewing.renewal_of == policy_id


def test_the_sale_can_be_replayed_as_a_timeline(
    client: Any,
    anon_client: Any,
    customer: dict[str, str],
    customer_headers: dict[str, str],
    db_url: str,
) -> None:
    from covernet.identity.models import Role
    from tests.conftest import add_staff

    policy_id = _bought(client, customer_headers)
    app_id = client.get(f"/api/v1/policies/{policy_id}", headers=customer_headers).json()[
        "application_id"
    ]
    sign_in_with_cookie(client, db_url, customer["id"])
    assert f"/applications/{app_id}/trace" in client.get(f"/policies/{policy_id}").text
    page = client.get(f"/applications/{app_id}/trace")
    assert page.status_code == 200
    for label in ("责任免除", "个人信息处理告知", "支付成功", "出单", "至少保存至"):
        assert label in page.text, label
    assert page.text.index("投保申请") < page.text.index("支付成功") < page.text.index("· 出单")
    english = client.get(f"/applications/{app_id}/trace?lang=en")
    assert "Record of the sale" in english.text and "Exclusions" in english.text
    compliance, _ = add_staff(db_url, "zhao", Role.compliance)
    sign_in_with_cookie(anon_client, db_url, compliance)
    assert anon_client.get(f"/applications/{app_id}/trace").status_code == 200
    from covernet.identity import service

    with unit_of_work(db_url) as db:
        other = service.register_customer(
            db, mobile="13700003333", password="another-pass-1", name="赵六"
        ).id
    sign_in_with_cookie(anon_client, db_url, other)
    assert anon_client.get(f"/applications/{app_id}/trace").status_code == 404
