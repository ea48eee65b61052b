"""The claim pages over HTTP (no JavaScript) on SQLite and PostgreSQL: filing from the
policy page with a field error kept, a double submit, uploads with their errors, the
tracker's stage, clocks and checklist, a handler acting from the console (four eyes),
ownership, the stage report's SVG, and the R21 monitor showing a breached claim."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from covernet.claims import board, fraud, views
from covernet.claims.models import Claim
from covernet.core import clock, i18n
from covernet.core.db import unit_of_work
from covernet.identity.models import Role
from tests.claims.test_claims_api import CARD, PDF, PNG, _policy
from tests.conftest import add_staff, sign_in_with_cookie

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def _hidden(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in HIDDEN.findall(page)}


def _form(policy_id: str, page: str, **over: str) -> dict[str, str]:
    fields = _hidden(page)
    fields.update(
        coverage_code="accidental-death-disability",
        cause="accident",
        incident_date=(clock.today() - timedelta(days=1)).isoformat(),
        description="下楼梯时摔倒，右腿骨折，住院治疗",
        amount="30000",
        payee_name="张三",
        payee_account=CARD,
    )
    fields.update(over)
    return fields


def _file(client: Any, db_url: str, customer: dict[str, str], policy_id: str) -> str:
    """Sign in with a cookie and file a claim through the page; the claim's id."""
    sign_in_with_cookie(client, db_url, customer["id"])
    page = client.get(f"/policies/{policy_id}/claim").text
    sent = client.post(f"/policies/{policy_id}/claim", data=_form(policy_id, page))
    assert sent.status_code == 200 and "/claims/" in str(sent.url), sent.text
    return str(sent.url).split("/claims/", 1)[1].split("?", 1)[0]


def _upload(client: Any, claim_id: str, kind: str, data: bytes, name: str = "a.pdf") -> Any:
    csrf = _hidden(client.get(f"/claims/{claim_id}").text)["csrf_token"]
    return client.post(
        f"/claims/{claim_id}/documents",
        data={"csrf_token": csrf, "kind": kind},
        files={"file": (name, data, "application/octet-stream")},
        follow_redirects=False,
    )


def _handler(client: Any, db_url: str, username: str, role: Role = Role.claims) -> str:
    sign_in_with_cookie(client, db_url, add_staff(db_url, username, role)[0])
    return _hidden(client.get("/console/claims").text).get("csrf_token", "")


def _act(client: Any, claim_id: str, action: str, **fields: Any) -> Any:
    csrf = _hidden(client.get(f"/console/claims/{claim_id}").text)["csrf_token"]
    return client.post(
        f"/console/claims/{claim_id}/{action}",
        data={"csrf_token": csrf, **fields},
        follow_redirects=False,
    )


def test_filing_through_the_page_keeps_input_and_files_once(
    client: Any, customer: dict[str, str], customer_headers: dict[str, str], db_url: str
) -> None:
    policy = _policy(client, customer_headers)
    pid = policy["policy_id"]
    with clock.shifted(timedelta(days=3)):  # the cover started the day after purchase
        csrf = sign_in_with_cookie(client, db_url, customer["id"])
        shown = client.get(f"/policies/{pid}")
        assert f'href="/policies/{pid}/claim" data-claim-link' in shown.text
        assert 'href="/claims"' in client.get("/account").text
        page = client.get(f"/policies/{pid}/claim")
        assert page.status_code == 200 and "申请理赔" in page.text
        assert "意外身故伤残" in page.text or "accidental-death-disability" in page.text
        form = _form(pid, page.text, payee_account="1234", description="摔倒骨折住院了")
        assert form["csrf_token"] == csrf and form["form_token"]
        bad = client.post(f"/policies/{pid}/claim", data=form)
        assert bad.status_code == 400
        assert 'data-error="payee_account"' in bad.text and "12至19位数字" in bad.text
        assert 'aria-invalid="true" aria-describedby="error-payee_account"' in bad.text
        assert "摔倒骨折住院了</textarea>" in bad.text  # the input is kept
        assert 'value="30000"' in bad.text and f'value="{form["form_token"]}"' in bad.text
        late = client.post(
            f"/policies/{pid}/claim",
            data={**form, "payee_account": CARD, "incident_date": "2000-01-01"},
        )
        assert late.status_code == 400 and 'data-error="incident_date"' in late.text
        assert "保障开始之前" in late.text
        good = {**form, "payee_account": CARD}
        first = client.post(f"/policies/{pid}/claim", data=good, follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"].startswith("/claims/")
        again = client.post(f"/policies/{pid}/claim", data=good, follow_redirects=False)
        assert again.headers["location"] == first.headers["location"]  # a second tap
        with unit_of_work(db_url) as db:
            assert db.scalar(select(func.count()).select_from(Claim)) == 1
            claim = db.scalars(select(Claim)).one()
            claim_id, claim_no = claim.id, claim.claim_no
        tracker = client.get(first.headers["location"])
        assert tracker.status_code == 200 and "理赔申请已提交" in tracker.text
        assert 'data-track="reported" aria-current="step"' in tracker.text
        assert f'data-poll="/api/v1/claims/{claim_id}"' in tracker.text
        assert "<noscript>" in tracker.text and "js/claim.js" in tracker.text
        assert 'data-waiting="insurer"' in tracker.text and "data-clock-none" in tracker.text
        assert "6222 **** **** 0123" in tracker.text and CARD not in tracker.text
        mine = client.get("/claims")
        assert claim_no in mine.text and f'href="/claims/{claim_id}"' in mine.text
        english = client.get(f"/claims/{claim_id}?lang=en")
        assert "Reported" in english.text and "Documents" in english.text


def test_uploads_the_tracker_and_a_handler_acting_from_the_console(
    client: Any,
    anon_client: Any,
    customer: dict[str, str],
    customer_headers: dict[str, str],
    db_url: str,
    monkeypatch: Any,
) -> None:
    policy = _policy(client, customer_headers)
    with clock.shifted(timedelta(days=3)):
        cid = _file(client, db_url, customer, policy["policy_id"])
        ok = _upload(client, cid, "id_card", PDF, "身份证.pdf")
        assert ok.status_code == 303 and ok.headers["location"].startswith(f"/claims/{cid}?")
        page = client.get(ok.headers["location"]).text
        assert 'data-document="id_card" data-uploaded="yes"' in page and "材料已上传" in page
        fake = _upload(client, cid, "diagnosis", b"MZ\x90\x00 not a picture", "x.exe")
        assert fake.status_code == 400 and "data-upload-error" in fake.text
        assert "只能上传照片" in fake.text
        assert 'aria-describedby="error-file-diagnosis"' in fake.text
        monkeypatch.setenv("COVERNET_CLAIM_UPLOAD_MAX_BYTES", "2048")
        from covernet.core.config import reset_settings

        reset_settings()
        big = _upload(client, cid, "diagnosis", PDF + b"0" * 4096)
        assert big.status_code == 400 and "文件太大" in big.text
        monkeypatch.delenv("COVERNET_CLAIM_UPLOAD_MAX_BYTES")
        reset_settings()

        # A claims handler in another browser: the board, the claim, the actions.
        _handler(anon_client, db_url, "lihandler")
        shown = anon_client.get("/console/claims")
        assert shown.status_code == 200 and f'href="/console/claims/{cid}"' in shown.text
        assert 'data-flag="soon_after_start"' in shown.text  # fraud flags as chips
        detail = anon_client.get(f"/console/claims/{cid}").text
        assert "右腿骨折" in detail and 'data-action="accept"' in detail
        assert f'href="/api/v1/claims/{cid}/documents/' in detail
        assert _act(anon_client, cid, "accept").status_code == 303
        asked = _act(anon_client, cid, "request_documents", missing=["diagnosis"], note="请补诊断")
        assert asked.status_code == 303 and asked.headers["location"].endswith(
            "done=request_documents"
        )
        assert "已通知客户补充材料" in anon_client.get(asked.headers["location"]).text
        early = _act(anon_client, cid, "documents_complete")
        assert early.status_code == 409 and 'data-action-error="documents_complete"' in early.text
        short = _act(anon_client, cid, "decline", reason="不")
        assert short.status_code == 400 and "请写明拒赔理由" in short.text

        tracker = client.get(f"/claims/{cid}").text  # what the customer sees now
        assert 'data-track="documents" aria-current="step"' in tracker
        assert 'data-waiting="customer"' in tracker and "需补充" in tracker
        assert "医院诊断证明" in tracker and "请补诊断" in tracker
        assert "内部备注" not in tracker
        for code in ("diagnosis",):
            assert _upload(client, cid, code, PDF + code.encode()).status_code == 303
        assert _act(anon_client, cid, "documents_complete").status_code == 303
        ticking = client.get(f"/claims/{cid}").text
        assert 'data-clock="decision" data-clock-state="running"' in ticking
        assert _act(anon_client, cid, "investigate", note="核实医院记录").status_code == 303
        staff_view = anon_client.get(f"/console/claims/{cid}").text
        assert "核实医院记录" in staff_view  # the internal note, for staff only
        assert "核实医院记录" not in client.get(f"/claims/{cid}").text
        assert _act(anon_client, cid, "assess").status_code == 303
        assessed = anon_client.get(f"/console/claims/{cid}").text
        assert "data-four-eyes" in assessed and "您不能审批" in assessed
        same = _act(anon_client, cid, "approve")
        assert same.status_code == 403 and 'data-action-error="approve"' in same.text
        assert "另一位理赔人员审批" in same.text

        shown_to_customer = client.get(f"/claims/{cid}").text
        assert 'data-track="assessed" aria-current="step"' in shown_to_customer
        assert (
            "¥30,000.00" in shown_to_customer and 'data-step="coverage_limit"' in shown_to_customer
        )
        assert "是这样算出的" in shown_to_customer

        second = anon_client  # a second handler signs in on the same browser
        _handler(second, db_url, "wanghandler")
        assert _act(second, cid, "approve").status_code == 303
        paid = client.get(f"/claims/{cid}").text
        assert 'data-track="decision" aria-current="step"' in paid
        assert 'data-clock="payment"' in paid


def test_another_customer_sees_nothing(
    client: Any,
    anon_client: Any,
    customer: dict[str, str],
    customer_headers: dict[str, str],
    db_url: str,
) -> None:
    policy = _policy(client, customer_headers)
    with clock.shifted(timedelta(days=3)):
        cid = _file(client, db_url, customer, policy["policy_id"])
        from covernet.identity import service as identity

        with unit_of_work(db_url) as db:
            other = identity.register_customer(
                db, mobile="13700004444", password="another-pass-1", name="钱七"
            ).id
        csrf = sign_in_with_cookie(anon_client, db_url, other)
        assert anon_client.get(f"/claims/{cid}").status_code == 404
        assert anon_client.get(f"/policies/{policy['policy_id']}/claim").status_code == 404
        stolen = anon_client.post(
            f"/claims/{cid}/documents",
            data={"csrf_token": csrf, "kind": "id_card"},
            files={"file": ("a.png", PNG, "image/png")},
        )
        assert stolen.status_code == 404
        assert anon_client.get("/console/claims").status_code == 403  # customers: no console
        assert cid not in anon_client.get("/claims").text


def test_the_report_draws_a_bar_per_stage_and_the_monitor_shows_breaches(
    client: Any,
    anon_client: Any,
    customer: dict[str, str],
    customer_headers: dict[str, str],
    db_url: str,
) -> None:
    policy = _policy(client, customer_headers)
    with clock.shifted(timedelta(days=3)):
        cid = _file(client, db_url, customer, policy["policy_id"])
        with unit_of_work(db_url) as db:
            needs = db.get(Claim, cid).required_documents  # type: ignore[union-attr]
        for code in needs:
            assert _upload(client, cid, code, PDF + code.encode()).status_code == 303
        _handler(anon_client, db_url, "lihandler")
        assert _act(anon_client, cid, "accept").status_code == 303
        assert _act(anon_client, cid, "documents_complete").status_code == 303
    with clock.shifted(timedelta(days=35)):  # 32 days after complete documents: breached
        _handler(anon_client, db_url, "boardview")
        shown = anon_client.get("/console/claims").text
        assert f'data-claim="{cid}" data-urgency="breached"' in shown
        assert "clock-badge--breached" in shown and "已超期" in shown
        report = anon_client.get("/console/claims/report?days=60")
        assert report.status_code == 200 and "<svg" in report.text
        with unit_of_work(db_url) as db:
            until = clock.now()
            stages = [r.stage for r in board.stage_report(db, until - timedelta(days=60), until)]
        assert stages and {"reported", "accepted", "documents"} <= set(stages)
        for stage in stages:
            assert f'<g data-stage="{stage}">' in report.text
            assert f'<tr data-row="{stage}">' in report.text
        assert report.text.count('data-bar="p90"') == len(stages)
        assert "<script" not in report.text  # drawn on the server
        empty = anon_client.get("/console/claims/report?days=7")
        assert empty.status_code == 200 and "没有报案的理赔" in empty.text

        sign_in_with_cookie(anon_client, db_url, add_staff(db_url, "officer", Role.compliance)[0])
        monitors = anon_client.get("/console/monitors").text
        with unit_of_work(db_url) as db:
            claim_no = db.get(Claim, cid).claim_no  # type: ignore[union-attr]
        assert claim_no in monitors and f'href="/console/claims/{cid}"' in monitors
        assert 'data-state="clock_breached"' in monitors
        api = anon_client.get("/api/v1/compliance/monitors").json()
        figures = api["figures"] if isinstance(api, dict) else api
        figure = next(f for f in figures if f["key"] == "claims_clocks")
        assert figure["status"] == "breach" and figure["value"] == 1


def test_every_key_the_claim_pages_build_exists_in_both_languages() -> None:
    from covernet.claims import console

    keys = views.all_keys()
    keys += [f"claims.action.{a}" for a in console.ALL_ACTIONS]
    keys += [f"claim.done.{a}" for a in console.ALL_ACTIONS]
    keys += [f"claim.next.{s}" for s in (*board.TERMINAL, "reported", "accepted", "documents")]
    keys += [f"claim.next.{s}" for s in ("investigating", "assessed", "approved")]
    keys += [f"claim.form.error.{f}" for f in ("coverage_code", "cause", "incident_date")]
    keys += [f"claim.form.error.{f}" for f in ("description", "amount", "payee_name")]
    keys += ["claim.form.error.payee_account"]
    keys += [f"claim.flag.{f}" for f in fraud.SIGNALS]
    for lang in i18n.LANGS:
        assert [k for k in keys if k not in i18n.catalogs()[lang]] == [], lang
