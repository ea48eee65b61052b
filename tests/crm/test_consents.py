"""Marketing consent (R28) on SQLite and PostgreSQL: never pre-ticked, granted against the
notice version shown, withdrawn as easily, every change kept and audited."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import func, select

from covernet.audit.models import AuditEntry
from covernet.core.db import unit_of_work
from covernet.crm import consents
from covernet.crm.consent_models import CustomerConsent, CustomerConsentEvent
from tests.conftest import sign_in_with_cookie

URL = "/api/v1/me/consents"
VERSION = consents.NOTICES[consents.Purpose.marketing_offers].version


def test_not_granted_until_asked_then_granted_and_withdrawn(
    client: Any, db_url: str, customer: dict[str, str], customer_headers: dict[str, str]
) -> None:
    (first,) = client.get(URL, headers=customer_headers).json()
    assert first["purpose"] == "marketing_offers"
    assert first["granted"] is False and first["text_version"] is None
    assert first["current_version"] == VERSION and first["notice"]["zh"]
    stale = client.put(
        f"{URL}/marketing_offers",
        headers=customer_headers,
        json={"granted": True, "text_version": "2020-01-01"},
    )
    assert stale.status_code == 400 and stale.json()["error"] == "consent_text_outdated"
    assert stale.json()["detail"]["field"] == "text_version"
    blind = client.put(f"{URL}/marketing_offers", headers=customer_headers, json={"granted": True})
    assert blind.status_code == 400
    granted = client.put(
        f"{URL}/marketing_offers",
        headers=customer_headers,
        json={"granted": True, "text_version": VERSION},
    )
    assert granted.status_code == 200 and granted.json()["granted"] is True
    assert granted.json()["source"] == "api"
    again = client.put(
        f"{URL}/marketing_offers",
        headers=customer_headers,
        json={"granted": True, "text_version": VERSION},
    )
    assert again.status_code == 200
    withdrawn = client.put(
        f"{URL}/marketing_offers", headers=customer_headers, json={"granted": False}
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["granted"] is False
    unknown = client.put(f"{URL}/newsletters", headers=customer_headers, json={"granted": False})
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_consent_purpose"
    with unit_of_work(db_url) as db:
        history = consents.history_of(db, customer["id"])
        assert [h.action for h in history] == ["withdrawn", "granted"]  # the repeat adds nothing
        assert all(h.text_version == VERSION for h in history)
        actions = db.scalars(
            select(AuditEntry.action).where(AuditEntry.subject_id == customer["id"])
        ).all()
        assert {"consent.granted", "consent.withdrawn"} <= set(actions)
        assert consents.has_consent(db, customer["id"], "marketing_offers") is False
        assert [c.granted for c in consents.consents_of(db, customer["id"])] == [False]


def test_staff_have_no_consents_here(client: Any, db_url: str) -> None:
    from covernet.identity.models import Role
    from tests.conftest import staff_headers

    headers = staff_headers(client, db_url, "ops-consent", Role.ops)
    assert client.get(URL, headers=headers).status_code == 403


def test_account_page_grants_and_withdraws_in_one_tap(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    csrf = sign_in_with_cookie(client, db_url, customer["id"])
    account = client.get("/account")
    assert "data-account-consents" in account.text and "/account/consents" in account.text
    page = client.get("/account/consents")
    assert page.status_code == 200
    assert 'data-granted="no"' in page.text and "checked" not in page.text  # never pre-ticked
    granted = client.post(
        "/account/consents/marketing_offers",
        data={"csrf_token": csrf, "granted": "yes", "text_version": VERSION},
        follow_redirects=False,
    )
    assert granted.status_code == 303
    assert 'data-granted="yes"' in client.get("/account/consents").text
    withdrawn = client.post(
        "/account/consents/marketing_offers", data={"csrf_token": csrf, "granted": "no"}
    )
    assert withdrawn.status_code == 200 and 'data-granted="no"' in withdrawn.text
    forged = client.post("/account/consents/marketing_offers", data={"granted": "yes"})
    assert forged.status_code == 403  # no CSRF token
    with unit_of_work(db_url) as db:
        sources = {h.source for h in consents.history_of(db, customer["id"])}
        assert sources == {"account_page"}


def test_concurrent_first_grants_make_one_row(
    client: Any, db_url: str, customer: dict[str, str]
) -> None:
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def grant() -> None:
        start.wait()
        try:
            with unit_of_work(db_url) as db:
                consents.set_consent(
                    db,
                    customer["id"],
                    "marketing_offers",
                    consents.ConsentIn(granted=True, text_version=VERSION),
                )
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=grant) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with unit_of_work(db_url) as db:
        rows = db.scalar(select(func.count()).select_from(CustomerConsent))
        assert rows == 1
        assert consents.has_consent(db, customer["id"], "marketing_offers")
        events = db.scalar(select(func.count()).select_from(CustomerConsentEvent))
        assert events is not None and events >= 1
    assert all("database is locked" in str(f) for f in failures), failures
