"""Buying a policy: quote → apply → pay → instant underwriting → policy (R7–R9, R11, R13,
R16), on SQLite and PostgreSQL, with the sandbox payment provider's real callbacks."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from covernet.core import clock
from covernet.core.cn_identity import make_id_number
from covernet.core.db import unit_of_work
from covernet.payments.models import LedgerEntry
from covernet.policies.models import Application, Policy, TraceEvent
from tests.policies.buying import APPLICANT_ID, CHILD_ID, application, apply, pay, quote


def test_quote_to_policy(client: Any, customer_headers: dict[str, str], db_url: str) -> None:
    q = quote(client, customer_headers)
    made = apply(client, customer_headers, application(client, q), key="buy-1")
    assert made.status_code == 201, made.text
    app = made.json()
    assert app["status"] == "pending_payment" and app["premium_fen"] == 500
    assert app["pay_url"].endswith(f"/sandbox/pay/{app['payment_id']}")
    again = apply(client, customer_headers, application(client, q), key="buy-1")
    assert again.status_code == 201 and again.json()["application_id"] == app["application_id"]
    assert again.headers.get("Idempotency-Replayed") == "true"
    pay(client, app["payment_id"])
    done = client.get(f"/api/v1/applications/{app['application_id']}", headers=customer_headers)
    assert done.json()["status"] == "issued" and done.json()["policy_no"].startswith("CN")
    policies = client.get("/api/v1/policies", headers=customer_headers).json()
    assert [p["policy_no"] for p in policies] == [done.json()["policy_no"]]
    policy = policies[0]
    assert policy["status"] in ("pending", "in_force") and policy["sum_insured_fen"] == 30_000_000
    assert policy["renewal_guaranteed"] is False
    with unit_of_work(db_url) as db:
        stored = db.scalars(select(Application)).one()
        assert APPLICANT_ID not in stored.applicant_id_enc and "张三" not in stored.insured_name_enc
        accounts = {
            e.account: e.amount_fen for e in db.scalars(select(LedgerEntry)) if e.amount_fen > 0
        }
        assert accounts == {"insurer:anxin-pc:premium": 500}
        steps = [(e.kind, e.step) for e in db.scalars(select(TraceEvent).order_by(TraceEvent.id))]
    assert ("confirmed", "exclusions") in steps and ("system", "issued") in steps
    timeline = client.get(
        f"/api/v1/applications/{app['application_id']}/trace", headers=customer_headers
    ).json()
    assert timeline["retention_until"] and timeline["events"][0]["content_hash"]


def test_a_replayed_callback_never_issues_twice(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    q = quote(client, customer_headers)
    app = apply(client, customer_headers, application(client, q)).json()
    done = client.post(f"/sandbox/payments/{app['payment_id']}/succeed?duplicate=true")
    assert done.status_code in (200, 202)
    from covernet.payments.providers import sandbox

    sandbox.deliver_due(client, reverse=True)
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(Policy)) == 1


def test_missing_acknowledgements_are_named(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    q = quote(client, customer_headers)
    body = application(client, q)
    acks = dict(body["acknowledgements"])
    acks.pop("exclusions")
    missing = apply(client, customer_headers, {**body, "acknowledgements": acks})
    assert missing.status_code == 400, missing.text
    assert missing.json()["error"] == "acknowledgement_required"
    assert missing.json()["detail"]["field"] == "acknowledgements.exclusions"
    stale = apply(
        client, customer_headers, {**body, "acknowledgements": {**acks, "exclusions": "0" * 64}}
    )
    assert stale.json()["error"] == "document_changed"
    with unit_of_work(db_url) as db:  # nothing half-written
        assert db.scalar(select(func.count()).select_from(Application)) == 0
        assert db.scalar(select(func.count()).select_from(TraceEvent)) == 0


MEDICAL = {"product_code": "medical-million", "plan_code": "standard"}
NO = {"major-diagnoses": False, "pending-hospital": False, "chronic-conditions": False}


def _medical_answers(**yes: bool) -> dict[str, bool]:
    return {**NO, "congenital": False, **{k.replace("_", "-"): v for k, v in yes.items()}}


def _status(client: Any, headers: dict[str, str], app_id: str) -> dict[str, Any]:
    return dict(client.get(f"/api/v1/applications/{app_id}", headers=headers).json())


def test_health_answers_decide_at_once(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    # Every question must be answered, yes or no: nothing is assumed (R8).
    q = quote(client, customer_headers, **MEDICAL)
    partial = apply(client, customer_headers, application(client, q, health_answers=NO))
    assert partial.json()["error"] == "health_answer_required"
    assert partial.json()["detail"]["field"] == "health_answers.congenital"
    declined = apply(
        client,
        customer_headers,
        application(client, q, health_answers=_medical_answers(major_diagnoses=True)),
    ).json()
    pay(client, declined["payment_id"])
    after = _status(client, customer_headers, declined["application_id"])
    assert after["status"] == "declined" and after["decision_reason"] == "health_declined"
    payment = client.get(f"/api/v1/payments/{declined['payment_id']}", headers=customer_headers)
    refunds = payment.json()["refunds"]
    assert [r["amount_fen"] for r in refunds] == [after["premium_fen"]]
    # A referral waits for a human: accept issues the policy.
    q2 = quote(client, customer_headers, **MEDICAL)
    referred = apply(
        client,
        customer_headers,
        application(client, q2, health_answers=_medical_answers(pending_hospital=True)),
    ).json()
    pay(client, referred["payment_id"])
    assert _status(client, customer_headers, referred["application_id"])["status"] == "referred"
    from covernet.identity.models import Role
    from tests.conftest import staff_headers

    ops = staff_headers(client, db_url, "underwriter", Role.ops)
    queue = client.get("/api/v1/underwriting/referrals", headers=ops).json()
    assert [a["application_id"] for a in queue] == [referred["application_id"]]
    assert client.get("/api/v1/underwriting/referrals", headers=customer_headers).status_code == 403
    decided = client.post(
        f"/api/v1/underwriting/referrals/{referred['application_id']}/decision",
        headers=ops,
        json={"decision": "accept", "note": "住院已结束，出院小结正常"},
    )
    assert decided.status_code == 200 and decided.json()["status"] == "issued"
    twice = client.post(
        f"/api/v1/underwriting/referrals/{referred['application_id']}/decision",
        headers=ops,
        json={"decision": "decline", "note": "再次"},
    )
    assert twice.status_code == 409 and twice.json()["error"] == "not_referred"


def test_duplicate_medical_cover_needs_the_customers_choice(
    client: Any, customer_headers: dict[str, str]
) -> None:
    first = apply(
        client,
        customer_headers,
        application(
            client, quote(client, customer_headers, **MEDICAL), health_answers=_medical_answers()
        ),
    ).json()
    pay(client, first["payment_id"])
    body = application(
        client, quote(client, customer_headers, **MEDICAL), health_answers=_medical_answers()
    )
    warned = apply(client, customer_headers, body)
    assert warned.status_code == 400
    assert warned.json()["error"] == "suitability_confirmation_required"
    assert warned.json()["detail"]["warnings"] == ["duplicate_indemnity"]
    going_on = apply(
        client, customer_headers, {**body, "suitability_confirmed": ["duplicate_indemnity"]}
    )
    assert going_on.status_code == 201
    assert going_on.json()["suitability_warnings"] == ["duplicate_indemnity"]


def test_accumulation_limit_declines_and_refunds(
    client: Any, customer_headers: dict[str, str]
) -> None:
    # accident: refer above 3,000,000 yuan, decline above 5,000,000 (underwriting.yaml);
    # referred applications count too, so splitting cover cannot get round the limit.
    outcomes = []
    for _ in range(6):
        made = apply(
            client,
            customer_headers,
            application(client, quote(client, customer_headers, plan_code="plus")),
        ).json()
        pay(client, made["payment_id"])
        after = _status(client, customer_headers, made["application_id"])
        outcomes.append((after["status"], after["decision_reason"]))
    assert outcomes == [
        ("issued", None),
        ("issued", None),
        ("issued", None),
        ("referred", "accumulation_review"),
        ("referred", "accumulation_review"),
        ("declined", "accumulation_exceeded"),
    ]


def test_uncertain_products_need_the_typed_statement(
    client: Any, customer_headers: dict[str, str]
) -> None:
    q = quote(
        client,
        customer_headers,
        product_code="annuity-participating",
        plan_code="unit-10k",
        payment="single",
    )
    body = application(client, q, suitability_confirmed=["affordability", "uncertain_benefits"])
    wrong = apply(client, customer_headers, {**body, "uncertainty_statement": "我知道了"})
    assert wrong.json()["error"] == "uncertainty_statement_required"
    assert "不确定性" in wrong.json()["detail"]["statement"]
    spaced = " ".join(body["uncertainty_statement"]) + "。"
    ok = apply(client, customer_headers, {**body, "uncertainty_statement": spaced})
    assert ok.status_code == 201, ok.text


def test_people_and_quotes_are_checked(
    client: Any, customer_headers: dict[str, str], anon_client: Any
) -> None:
    q = quote(client, customer_headers)
    other = make_id_number("110105", date(1985, 1, 2), 15)
    mismatch = apply(
        client,
        customer_headers,
        application(client, q, applicant={"name": "张三", "id_number": other}),
    )
    assert mismatch.json()["error"] == "insured_mismatch"
    bad_id = apply(
        client,
        customer_headers,
        application(client, q, applicant={"name": "张三", "id_number": "110105198501020000"}),
    )
    assert bad_id.status_code == 400 and bad_id.json()["detail"]["field"] == "applicant.id_number"
    child_q = quote(
        client, customer_headers, **MEDICAL, insured={"id_number": CHILD_ID, "region": "310000"}
    )
    as_spouse = apply(
        client,
        customer_headers,
        application(
            client,
            child_q,
            relationship="spouse",
            insured={"name": "张小花", "id_number": CHILD_ID},
            health_answers=_medical_answers(),
        ),
    )
    assert as_spouse.json()["error"] == "guardian_required"
    as_child = apply(
        client,
        customer_headers,
        application(
            client,
            child_q,
            relationship="child",
            insured={"name": "张小花", "id_number": CHILD_ID},
            health_answers=_medical_answers(),
        ),
    )
    assert as_child.status_code == 201, as_child.text
    reused = apply(
        client,
        customer_headers,
        application(
            client,
            child_q,
            relationship="child",
            insured={"name": "张小花", "id_number": CHILD_ID},
            health_answers=_medical_answers(),
        ),
    )
    assert reused.status_code == 409 and reused.json()["error"] == "quote_used"
    # Another customer's quote is not found; an expired quote is refused.
    from tests.conftest import CUSTOMER

    anon_client.post(
        "/api/v1/auth/register",
        json={"mobile": "13700001111", "password": "another-pass-1", "name": "李四"},
    )
    from tests.conftest import bearer

    li = bearer(anon_client, "13700001111", "another-pass-1")
    stranger = apply(anon_client, li, application(anon_client, q))
    assert stranger.status_code == 404 and stranger.json()["error"] == "unknown_quote"
    with clock.shifted(timedelta(minutes=31)):
        late = apply(client, customer_headers, application(client, q))
    assert late.json()["error"] == "quote_expired"
    assert CUSTOMER["mobile"]


def test_failed_payment_abandons_the_application(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    made = apply(
        client, customer_headers, application(client, quote(client, customer_headers))
    ).json()
    pay(client, made["payment_id"], outcome="fail")
    assert _status(client, customer_headers, made["application_id"])["status"] == "abandoned"
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(Policy)) == 0


def test_concurrent_double_submit_makes_one_application(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    body = application(client, quote(client, customer_headers))
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: apply(client, customer_headers, body, key="tap"), range(4))
        )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["application_id"] for a in answers}) == 1
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(Application)) == 1
    reuse = apply(
        client, customer_headers, {**body, "relationship": "self", "shown": []}, key="tap"
    )
    assert reuse.status_code == 201  # the same body: the same answer
    other = apply(client, customer_headers, {**body, "suitability_confirmed": ["x"]}, key="tap")
    assert other.status_code == 409 and other.json()["error"] == "idempotency_key_reused"


def test_an_advised_sale_needs_a_licensed_advisor(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    from covernet.identity.models import Role
    from tests.conftest import add_staff, staff_headers

    advisor_id, _ = add_staff(db_url, "wang", Role.advisor)
    q = quote(client, customer_headers)
    unlicensed = apply(client, customer_headers, application(client, q, advisor_id=advisor_id))
    assert unlicensed.status_code == 403 and unlicensed.json()["error"] == "unlicensed"
    officer = staff_headers(client, db_url, "zhao", Role.compliance)
    held = client.post(
        "/api/v1/compliance/licenses",
        headers=officer,
        json={
            "license_no": "02000111000080002024000999",
            "advisor_username": "wang",
            "institution": "示例安心财产保险股份有限公司（演示）",
            "valid_until": (clock.today() + timedelta(days=100)).isoformat(),
            "lines": ["medical"],
        },
    )
    assert held.status_code == 201
    scope = apply(client, customer_headers, application(client, q, advisor_id=advisor_id))
    assert scope.json()["error"] == "license_out_of_scope"
    client.post(
        f"/api/v1/compliance/licenses/{held.json()['id']}/status",
        headers=officer,
        json={"status": "revoked", "reason": "离职"},
    )
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(Application)) == 0
    li, _ = add_staff(db_url, "liming", Role.advisor, name="李顾问")
    client.post(
        "/api/v1/compliance/licenses",
        headers=officer,
        json={
            "license_no": "02000111000080002024000888",
            "advisor_username": "liming",
            "institution": "示例安心财产保险股份有限公司（演示）",
            "valid_until": (clock.today() + timedelta(days=100)).isoformat(),
            "lines": ["accident"],
        },
    )
    advised = apply(client, customer_headers, application(client, q, advisor_id=li))
    assert advised.status_code == 201, advised.text
    pay(client, advised.json()["payment_id"])
    with unit_of_work(db_url) as db:
        policy = db.scalars(select(Policy)).one()
        assert policy.advisor_id == li
        step = db.scalars(select(TraceEvent).where(TraceEvent.step == "advisor")).one()
        assert step.detail["license_no"] == "02000111000080002024000888"


def test_a_crash_before_issuing_is_retried_into_exactly_one_policy(
    client: Any, customer_headers: dict[str, str], db_url: str, monkeypatch: Any
) -> None:
    """The callback's transaction holds payment, underwriting and issuance together: a
    crash rolls all of it back, the provider retries, and the retry issues once."""
    from covernet.payments.providers import sandbox
    from covernet.policies import issuance

    made = apply(client, customer_headers, application(client, quote(client, customer_headers)))
    real_issue = issuance.issue
    calls = {"n": 0}

    def crash_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the process died here")
        return real_issue(*args, **kwargs)

    monkeypatch.setattr(issuance, "issue", crash_once)
    client.post(f"/sandbox/payments/{made.json()['payment_id']}/succeed")
    first = sandbox.deliver_due(client)
    assert first.failed and not first.delivered  # answered 500: nothing was kept
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(Policy)) == 0
        assert db.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    with clock.shifted(timedelta(minutes=5)):  # the provider's next attempt
        second = sandbox.deliver_due(client)
    assert second.delivered and not second.failed
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(Policy)) == 1
        paid = [e.amount_fen for e in db.scalars(select(LedgerEntry)) if e.amount_fen > 0]
        assert paid == [500]
