"""Claims over HTTP on SQLite and PostgreSQL: reporting, documents, every stage, the
refusals, the statutory clocks, four eyes, one payout, concurrent transitions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from covernet.claims.models import Claim, ClaimDocument
from covernet.core import clock
from covernet.core.db import unit_of_work
from covernet.identity.models import Role
from tests.conftest import CUSTOMER, bearer, staff_headers
from tests.policies.buying import application, apply, deliver, pay, quote

PDF = b"%PDF-1.4\n% test document\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
CARD = "6222021234567890123"
MEDICAL = {"product_code": "medical-million", "plan_code": "standard"}
NO = {
    "major-diagnoses": False,
    "pending-hospital": False,
    "chronic-conditions": False,
    "congenital": False,
}


def _policy(client: Any, headers: dict[str, str], **over: Any) -> dict[str, Any]:
    extra = {"health_answers": NO} if over.get("product_code") == "medical-million" else {}
    made = apply(client, headers, application(client, quote(client, headers, **over), **extra))
    assert made.status_code == 201, made.text
    pay(client, made.json()["payment_id"])
    mine = client.get("/api/v1/policies", headers=headers).json()
    return dict(next(p for p in mine if p["application_id"] == made.json()["application_id"]))


def _claim_body(policy: dict[str, Any], **over: Any) -> dict[str, Any]:
    body = {
        "policy_id": policy["policy_id"],
        "coverage_code": "accidental-death-disability",
        "cause": "accident",
        "incident_date": (clock.today() - timedelta(days=1)).isoformat(),
        "description": "下楼梯时摔倒，右腿骨折，住院治疗",
        "amount_claimed_fen": 3_000_000,
        "payee": {"name": "张三", "account": CARD},
    }
    body.update(over)
    return body


def _me(client: Any) -> dict[str, str]:
    return bearer(client, CUSTOMER["mobile"], CUSTOMER["password"])


def _upload_all(client: Any, headers: dict[str, str], claim: dict[str, Any]) -> None:
    for need in claim["documents"]:
        done = client.post(
            f"/api/v1/claims/{claim['claim_id']}/documents",
            headers=headers,
            data={"kind": need["code"]},
            files={"file": (f"{need['code']}.pdf", PDF + need["code"].encode(), "application/pdf")},
        )
        assert done.status_code == 201, done.text


def test_a_claim_moves_like_a_parcel(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    policy = _policy(client, customer_headers)
    with clock.shifted(timedelta(days=3)):  # cover started the day after purchase
        me = _me(client)
        made = client.post(
            "/api/v1/claims", headers={**me, "Idempotency-Key": "c-1"}, json=_claim_body(policy)
        )
        assert made.status_code == 201, made.text
        claim = made.json()
        assert claim["claim_no"].startswith("CL") and claim["stage"] == "reported"
        codes = [d["code"] for d in claim["documents"]]
        assert {"id_card", "accident_proof", "diagnosis", "disability_assessment"} <= set(codes)
        assert claim["payee_account"] == "6222 **** **** 0123" and claim["waiting_on"] == "insurer"
        again = client.post(
            "/api/v1/claims", headers={**me, "Idempotency-Key": "c-1"}, json=_claim_body(policy)
        )
        assert again.json()["claim_id"] == claim["claim_id"]
        handler = staff_headers(client, db_url, "lihandler", Role.claims)
        second = staff_headers(client, db_url, "wanghandler", Role.claims)
        cid = claim["claim_id"]
        accepted = client.post(f"/api/v1/claims/{cid}/accept", headers=handler, json={})
        assert accepted.json()["stage"] == "accepted"
        assert accepted.json()["waiting_on"] == "customer"
        early = client.post(f"/api/v1/claims/{cid}/documents-complete", headers=handler)
        assert early.status_code == 409 and early.json()["error"] == "documents_missing"
        _upload_all(client, me, claim)
        complete = client.post(f"/api/v1/claims/{cid}/documents-complete", headers=handler).json()
        assert complete["stage"] == "documents"
        decision = next(c for c in complete["clocks"] if c["name"] == "decision")
        assert decision["state"] == "running"
        assessed = client.post(f"/api/v1/claims/{cid}/assess", headers=handler, json={}).json()
        assert assessed["stage"] == "assessed" and assessed["assessed_amount_fen"] == 3_000_000
        assert assessed["assessment"]["steps"]
        # 30,000 yuan is above the four-eyes limit: the assessor may not approve it.
        same = client.post(f"/api/v1/claims/{cid}/approve", headers=handler)
        assert same.status_code == 403 and same.json()["error"] == "four_eyes_required"
        approved = client.post(f"/api/v1/claims/{cid}/approve", headers=second).json()
        assert approved["stage"] == "approved"
        assert any(c["name"] == "payment" for c in approved["clocks"])
        deliver(client)  # the provider confirms the payout
        paid = client.get(f"/api/v1/claims/{cid}", headers=me).json()
        assert paid["stage"] == "paid"
        assert [e["stage"] for e in paid["timeline"]] == [
            "reported",
            "accepted",
            "documents",
            "assessed",
            "approved",
            "paid",
        ]
        assert all(e["internal_note"] is None for e in paid["timeline"])  # not for customers
        assert paid["fraud_flags"] is None
        assert (
            client.post(f"/api/v1/claims/{cid}/close", headers=handler).json()["stage"] == "closed"
        )
        notes = client.get("/api/v1/me/notifications", headers=me).json()
        titles = [n["title"] for n in notes["items"]] if isinstance(notes, dict) else []
        assert any("已赔付" in t for t in titles), notes


def test_claims_outside_the_cover_are_refused(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    accident = _policy(client, customer_headers)
    today = clock.today()
    cases = [
        (_claim_body(accident, coverage_code="hospital"), "coverage_not_in_policy"),
        (
            _claim_body(accident, incident_date=(today - timedelta(days=5)).isoformat()),
            "before_effective_date",
        ),
        (
            _claim_body(accident, incident_date=(today + timedelta(days=2)).isoformat()),
            "incident_in_future",
        ),
    ]
    for body, code in cases:
        refused = client.post("/api/v1/claims", headers=customer_headers, json=body)
        assert refused.status_code == 400 and refused.json()["error"] == code, refused.text
    medical = _policy(client, customer_headers, **MEDICAL)
    with clock.shifted(timedelta(days=10)):
        me = _me(client)
        illness = _claim_body(
            medical,
            coverage_code="general-hospital",
            cause="illness",
            incident_date=clock.today().isoformat(),
        )
        waiting = client.post("/api/v1/claims", headers=me, json=illness)
        assert waiting.json()["error"] == "in_waiting_period"
        hurt = client.post("/api/v1/claims", headers=me, json={**illness, "cause": "accident"})
        assert hurt.status_code == 201, hurt.text  # accidents have no waiting period
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(Claim)) == 1


def test_a_cancelled_policy_covers_nothing_after_it_ended(
    client: Any, customer_headers: dict[str, str]
) -> None:
    policy = _policy(client, customer_headers)
    offer = client.post(
        f"/api/v1/policies/{policy['policy_id']}/surrender", headers=customer_headers, json={}
    ).json()
    client.post(
        f"/api/v1/policies/{policy['policy_id']}/surrender",
        headers=customer_headers,
        json={"confirm": True, "amount_fen": offer["amount_fen"]},
    )
    with clock.shifted(timedelta(days=3)):
        me = _me(client)
        late = client.post(
            "/api/v1/claims",
            headers=me,
            json=_claim_body(policy, incident_date=clock.today().isoformat()),
        )
        assert late.status_code == 400, late.text
        assert late.json()["error"] in (
            "policy_surrendered_before_incident",
            "before_effective_date",
        )


def test_documents_are_checked_and_missing_ones_requested_at_once(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    policy = _policy(client, customer_headers)
    with clock.shifted(timedelta(days=3)):
        me = _me(client)
        claim = client.post("/api/v1/claims", headers=me, json=_claim_body(policy)).json()
        cid = claim["claim_id"]
        url = f"/api/v1/claims/{cid}/documents"
        fake = client.post(
            url,
            headers=me,
            data={"kind": "id_card"},
            files={"file": ("x.pdf", b"MZ\x90\x00", "application/pdf")},
        )
        assert fake.json()["error"] == "unsupported_file_type"
        wrong = client.post(
            url, headers=me, data={"kind": "passport"}, files={"file": ("a.png", PNG)}
        )
        assert wrong.json()["error"] == "unknown_document_kind"
        ok = client.post(url, headers=me, data={"kind": "id_card"}, files={"file": ("a.png", PNG)})
        assert ok.status_code == 201 and ok.json()["content_type"] == "image/png"
        handler = staff_headers(client, db_url, "lihandler", Role.claims)
        client.post(f"/api/v1/claims/{cid}/accept", headers=handler, json={})
        asked = client.post(
            f"/api/v1/claims/{cid}/request-documents",
            headers=handler,
            json={"missing": ["diagnosis", "accident_proof"]},
        ).json()
        assert asked["missing_documents"] == ["diagnosis", "accident_proof"]
        note = asked["timeline"][-1]["note"]
        assert "医院诊断证明" in note and "意外事故证明" in note  # one list, all at once
        downloaded = client.get(
            f"/api/v1/claims/{cid}/documents/{ok.json()['document_id']}", headers=me
        )
        assert downloaded.content == PNG
        with unit_of_work(db_url) as db:
            doc = db.scalars(select(ClaimDocument)).one()
            assert doc.storage_key and doc.sha256  # stored outside the database
            stored = db.scalars(select(Claim)).one()
            assert CARD not in (stored.payee_account_enc or "")
            assert "骨折" not in (stored.description_enc or "")


def test_decline_needs_reasons_and_the_clocks_show_breaches(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    policy = _policy(client, customer_headers)
    with clock.shifted(timedelta(days=3)):
        me = _me(client)
        claim = client.post("/api/v1/claims", headers=me, json=_claim_body(policy)).json()
        cid = claim["claim_id"]
        handler = staff_headers(client, db_url, "lihandler", Role.claims)
        client.post(f"/api/v1/claims/{cid}/accept", headers=handler, json={})
        _upload_all(client, me, claim)
        client.post(f"/api/v1/claims/{cid}/documents-complete", headers=handler)
    with clock.shifted(timedelta(days=31)):  # 28 days after complete documents
        board = staff_headers(client, db_url, "boardview", Role.claims)
        near = client.get(f"/api/v1/claims/{cid}", headers=board).json()
        assert next(c for c in near["clocks"] if c["name"] == "decision")["state"] == "near"
    with clock.shifted(timedelta(days=35)):
        board = staff_headers(client, db_url, "boardview2", Role.claims)
        late = client.get(f"/api/v1/claims/{cid}", headers=board).json()
        assert next(c for c in late["clocks"] if c["name"] == "decision")["state"] == "breached"
        client.post(f"/api/v1/claims/{cid}/assess", headers=board, json={})
        short = client.post(f"/api/v1/claims/{cid}/decline", headers=board, json={"reason": "不"})
        assert short.json()["error"] == "reason_required"
        declined = client.post(
            f"/api/v1/claims/{cid}/decline",
            headers=board,
            json={"reason": "事故发生在保险责任免除的高风险运动（攀岩）中，见条款第五条"},
        ).json()
        assert declined["stage"] == "declined" and "攀岩" in declined["decision_reason"]
        states = {c["name"]: c["state"] for c in declined["clocks"]}
        assert states["denial_notice"] == "met" and states["decision"] == "met_late"


def test_two_handlers_at_once_only_one_moves_the_claim(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    policy = _policy(client, customer_headers)
    with clock.shifted(timedelta(days=3)):
        me = _me(client)
        cid = client.post("/api/v1/claims", headers=me, json=_claim_body(policy)).json()["claim_id"]
        handlers = [staff_headers(client, db_url, f"handler{i}", Role.claims) for i in range(4)]
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda h: client.post(f"/api/v1/claims/{cid}/accept", headers=h, json={}),
                    handlers,
                )
            )
        assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
        timeline = client.get(f"/api/v1/claims/{cid}", headers=me).json()["timeline"]
        assert [e["stage"] for e in timeline] == ["reported", "accepted"]


def test_who_may_see_and_move_a_claim(
    client: Any, customer_headers: dict[str, str], db_url: str, anon_client: Any
) -> None:
    policy = _policy(client, customer_headers)
    with clock.shifted(timedelta(days=3)):
        me = _me(client)
        cid = client.post("/api/v1/claims", headers=me, json=_claim_body(policy)).json()["claim_id"]
        assert client.post(f"/api/v1/claims/{cid}/accept", headers=me, json={}).status_code == 403
        anon_client.post(
            "/api/v1/auth/register",
            json={"mobile": "13700004444", "password": "another-pass-1", "name": "钱七"},
        )
        other = bearer(anon_client, "13700004444", "another-pass-1")
        assert anon_client.get(f"/api/v1/claims/{cid}", headers=other).status_code == 404
        stranger = anon_client.post("/api/v1/claims", headers=other, json=_claim_body(policy))
        assert stranger.status_code == 404
        advisor = staff_headers(client, db_url, "advisorx", Role.advisor)
        assert client.get(f"/api/v1/claims/{cid}", headers=advisor).status_code == 403
        officer = staff_headers(client, db_url, "officerx", Role.compliance)
        staff_view = client.get(f"/api/v1/claims/{cid}", headers=officer).json()
        assert staff_view["fraud_flags"] == ["soon_after_start"]


def test_investigate_withdraw_and_reopen(
    client: Any, customer_headers: dict[str, str], db_url: str
) -> None:
    policy = _policy(client, customer_headers)
    with clock.shifted(timedelta(days=3)):
        me = _me(client)
        claim = client.post("/api/v1/claims", headers=me, json=_claim_body(policy)).json()
        cid = claim["claim_id"]
        handler = staff_headers(client, db_url, "lihandler", Role.claims)
        client.post(f"/api/v1/claims/{cid}/accept", headers=handler, json={})
        _upload_all(client, me, claim)
        client.post(f"/api/v1/claims/{cid}/documents-complete", headers=handler)
        probing = client.post(
            f"/api/v1/claims/{cid}/investigate", headers=handler, json={"note": "核实事故经过"}
        ).json()
        assert probing["stage"] == "investigating" and probing["waiting_on"] == "insurer"
        assert probing["timeline"][-1]["internal_note"] == "核实事故经过"
        seen = client.get(f"/api/v1/claims/{cid}", headers=me).json()
        assert seen["timeline"][-1]["internal_note"] is None  # the customer never sees it
        gone = client.post(f"/api/v1/claims/{cid}/withdraw", headers=me).json()
        assert gone["stage"] == "withdrawn"
        twice = client.post(f"/api/v1/claims/{cid}/withdraw", headers=me)
        assert twice.status_code == 409 and twice.json()["error"] == "wrong_claim_stage"
        back = client.post(
            f"/api/v1/claims/{cid}/reopen", headers=handler, json={"note": "客户补充说明后重新受理"}
        ).json()
        assert back["stage"] == "accepted"
        assert not any(c["name"] == "decision" for c in back["clocks"])  # documents again
        assert (
            client.post(f"/api/v1/claims/{cid}/reopen", headers=handler, json={}).status_code == 409
        )


def test_an_incident_after_the_cover_ended_is_refused(
    client: Any, customer_headers: dict[str, str]
) -> None:
    policy = _policy(client, customer_headers)
    with clock.shifted(timedelta(days=40)):  # a one-month cover, long over
        me = _me(client)
        late = client.post(
            "/api/v1/claims",
            headers=me,
            json=_claim_body(policy, incident_date=(clock.today() - timedelta(days=1)).isoformat()),
        )
        assert late.status_code == 400 and late.json()["error"] == "after_end_date", late.text
        sick = client.post(
            "/api/v1/claims",
            headers=me,
            json=_claim_body(policy, cause="illness", incident_date=policy["effective_date"]),
        )
        assert sick.status_code == 400 and sick.json()["error"] == "cause_not_covered", sick.text


def test_key_rotation_reaches_claims_and_payouts(
    client: Any, customer_headers: dict[str, str], db_url: str, monkeypatch: Any
) -> None:
    from covernet.claims.service import rotate_field_keys as rotate_claims
    from covernet.core.config import get_settings
    from covernet.core.crypto import FieldCipher, new_key_entry, parse_keyring, reset_crypto
    from covernet.payments.payout_models import Payout
    from covernet.payments.payouts import rotate_field_keys as rotate_payouts
    from covernet.policies.applications import rotate_field_keys as rotate_applications

    policy = _policy(client, customer_headers)
    with clock.shifted(timedelta(days=3)):
        me = _me(client)
        claim = client.post(
            "/api/v1/claims", headers=me, json=_claim_body(policy, amount_claimed_fen=500_000)
        ).json()
        handler = staff_headers(client, db_url, "lihandler", Role.claims)
        client.post(f"/api/v1/claims/{claim['claim_id']}/accept", headers=handler, json={})
        _upload_all(client, me, claim)
        client.post(f"/api/v1/claims/{claim['claim_id']}/documents-complete", headers=handler)
        client.post(f"/api/v1/claims/{claim['claim_id']}/assess", headers=handler, json={})
        approved = client.post(f"/api/v1/claims/{claim['claim_id']}/approve", headers=handler)
        assert approved.status_code == 200, approved.text
    keys = f"{new_key_entry('k9')},{get_settings().field_keys}"
    monkeypatch.setenv("COVERNET_FIELD_KEYS", keys)
    from covernet.core.config import reset_settings

    reset_settings()
    reset_crypto()
    with unit_of_work(db_url) as db:
        assert rotate_claims(db) == 3  # description, payee name, payee account
        assert rotate_payouts(db) == 2
        assert rotate_applications(db) == 4  # names and ID numbers (no health answers)
        assert rotate_claims(db) == 0
    new_only = FieldCipher(parse_keyring(keys)[:1])
    with unit_of_work(db_url) as db:
        stored = db.scalars(select(Claim)).one()
        assert new_only.decrypt(stored.payee_account_enc or "", context="claim.payee") == CARD
        payout = db.scalars(select(Payout)).one()
        assert new_only.decrypt(payout.payee_account_enc, context="payout.account") == CARD
