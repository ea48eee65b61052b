"""The red envelope pages: the share page, grabbing and activating by form, the sender's
list of grabs; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from covernet.core.db import unit_of_work
from covernet.identity import service as identity
from covernet.policies.models import Policy
from tests.conftest import sign_in_with_cookie
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
