"""The live-session console: a host registers, runs and documents a session on the page;
compliance sees the findings by time and records the outcome."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from covernet.core import clock
from covernet.identity.models import Role
from tests.compliance.test_live import _setup
from tests.conftest import add_staff, sign_in_with_cookie

HTML = {"accept": "text/html"}


def _ids(page: str) -> list[str]:
    return re.findall(r'data-id="([0-9a-f-]{36})"', page)


def test_host_and_officer_on_the_console(client: Any, anon_client: Any, db_url: str) -> None:
    ctx = _setup(client, db_url)
    from covernet.core.db import unit_of_work
    from covernet.identity.models import User

    with unit_of_work(db_url) as db:
        host = db.query(User).filter_by(username="wang").one().id
    csrf = sign_in_with_cookie(client, db_url, host)
    page = client.get("/console/live", headers=HTML)
    assert page.status_code == 200 and "登记直播" in page.text
    assert ctx["script"]["id"] in page.text  # the approved script is offered
    start_at = clock.to_local(clock.now() + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    form = {
        "csrf_token": csrf,
        "title": "意外险怎么选",
        "scheduled_at": start_at,
        "script_id": ctx["script"]["id"],
        "product_codes": "accident-monthly",
    }
    made = client.post("/console/live", headers=HTML, data=form)
    assert made.status_code == 200 and "直播已登记" in made.text
    (sid,) = _ids(made.text)
    refused = client.post("/console/live", headers=HTML, data={**form, "scheduled_at": "明天"})
    assert refused.status_code == 400 and "YYYY-MM-DDTHH:MM" in refused.text
    assert 'value="意外险怎么选"' in refused.text  # the form keeps what was typed
    no_csrf = client.post(f"/console/live/{sid}/start", headers=HTML, data={})
    assert no_csrf.status_code == 403
    for action in ("start", "end"):
        done = client.post(f"/console/live/{sid}/{action}", headers=HTML, data={"csrf_token": csrf})
        assert done.status_code == 200, done.text
    uploaded = client.post(
        f"/console/live/{sid}/transcript",
        headers=HTML,
        data={"csrf_token": csrf},
        files={"file": ("live.srt", "1\n00:03:20,000 --> 00:03:22,000\n全网最便宜的意外险\n")},
    )
    assert uploaded.status_code == 200 and "00:03:20" in uploaded.text and "R23" in uploaded.text
    # The compliance officer reviews it on the same page.
    officer_id, _ = add_staff(db_url, "sun", Role.compliance, name="孙合规")
    anon_csrf = sign_in_with_cookie(anon_client, db_url, officer_id)
    queue = anon_client.get("/console/live", headers=HTML)
    assert _ids(queue.text)[0] == sid and "待合规复核" in queue.text
    needs_note = anon_client.post(
        f"/console/live/{sid}/review",
        headers=HTML,
        data={"csrf_token": anon_csrf, "outcome": "violations"},
    )
    assert needs_note.status_code == 400
    reviewed = anon_client.post(
        f"/console/live/{sid}/review",
        headers=HTML,
        data={"csrf_token": anon_csrf, "outcome": "violations", "note": "03:20 绝对化用语"},
    )
    assert reviewed.status_code == 200 and "存在违规" in reviewed.text
    english = anon_client.get("/console/live?lang=en", headers=HTML)
    assert "Violations found" in english.text and "Live sessions" in english.text


def test_console_needs_the_right_role(client: Any, db_url: str) -> None:
    assert client.get("/console/live", headers=HTML, follow_redirects=False).status_code == 303
    ops, _ = add_staff(db_url, "qian", Role.ops)
    sign_in_with_cookie(client, db_url, ops)
    assert client.get("/console/live", headers=HTML).status_code == 403
