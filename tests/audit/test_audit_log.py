"""The audit log is a hash chain: verification names the first entry that was altered,
inserted or removed; entries live and die with their action's transaction."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text, update

from covernet.audit import service as audit
from covernet.audit.models import AuditEntry, AuditHead
from covernet.core.db import unit_of_work
from covernet.identity.models import Role
from tests.conftest import ROOT, bearer, staff_headers


def _append(db_url: str, n: int) -> None:
    with unit_of_work(db_url) as db:
        for i in range(n):
            audit.record(
                db,
                "test.action",
                subject_type="thing",
                subject_id=str(i),
                detail={"n": i, "名字": "测试"},
            )


def _verify(db_url: str) -> audit.Verification:
    with unit_of_work(db_url) as db:
        return audit.verify(db)


def test_an_untouched_chain_verifies(db_url: str) -> None:
    _append(db_url, 12)
    result = _verify(db_url)
    assert result.ok and result.checked == 12


def test_an_altered_entry_is_named(db_url: str) -> None:
    _append(db_url, 8)
    with unit_of_work(db_url) as db:
        db.execute(update(AuditEntry).where(AuditEntry.seq == 5).values(subject_id="forged"))
    result = _verify(db_url)
    assert not result.ok and result.seq == 5 and "altered" in (result.problem or "")


def test_a_removed_entry_is_named(db_url: str) -> None:
    _append(db_url, 8)
    with unit_of_work(db_url) as db:
        db.execute(delete(AuditEntry).where(AuditEntry.seq == 4))
    result = _verify(db_url)
    assert not result.ok and result.seq == 4 and "removed" in (result.problem or "")


def test_entries_removed_from_the_end_are_named(db_url: str) -> None:
    _append(db_url, 8)
    with unit_of_work(db_url) as db:
        db.execute(delete(AuditEntry).where(AuditEntry.seq >= 7))
    result = _verify(db_url)
    assert not result.ok and result.seq == 7 and "from the end" in (result.problem or "")


def test_an_inserted_entry_is_named(db_url: str) -> None:
    """Make room at 4 by renumbering, and insert a well-formed entry chained to 3."""
    _append(db_url, 8)
    with unit_of_work(db_url) as db:
        for seq in range(8, 3, -1):
            db.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(seq=seq + 1))
        third = db.get(AuditEntry, 3)
        assert third is not None
        fake = AuditEntry(
            seq=4,
            at=third.at,
            actor_type="system",
            action="test.forged",
            detail={},
            prev_hash=third.hash,
        )
        fake.hash = audit.entry_hash(third.hash, fake)
        db.add(fake)
    result = _verify(db_url)
    assert not result.ok and result.seq == 4 and "inserted" in (result.problem or "")


def test_an_entry_added_after_the_head_is_named(db_url: str) -> None:
    _append(db_url, 3)
    with unit_of_work(db_url) as db:
        last = db.get(AuditEntry, 3)
        assert last is not None
        extra = AuditEntry(
            seq=4,
            at=last.at,
            actor_type="system",
            action="test.forged",
            detail={},
            prev_hash=last.hash,
        )
        extra.hash = audit.entry_hash(last.hash, extra)
        db.add(extra)
    result = _verify(db_url)
    assert not result.ok and result.seq == 4 and "inserted" in (result.problem or "")


def test_a_deleted_head_is_reported(db_url: str) -> None:
    _append(db_url, 2)
    with unit_of_work(db_url) as db:
        db.execute(delete(AuditHead))
    result = _verify(db_url)
    assert not result.ok and "head" in (result.problem or "")


def test_an_entry_lives_and_dies_with_its_transaction(db_url: str) -> None:
    _append(db_url, 2)
    with pytest.raises(RuntimeError), unit_of_work(db_url) as db:
        audit.record(db, "test.action")
        raise RuntimeError("the action failed after recording")
    with unit_of_work(db_url) as db:
        assert db.scalar(select(func.count()).select_from(AuditEntry)) == 2
        head = db.get(AuditHead, 1)
        assert head is not None and head.last_seq == 2
    assert _verify(db_url).ok


def test_concurrent_appends_never_fork_the_chain(db_url: str) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            _append(db_url, 5)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = _verify(db_url)
    assert result.ok and result.checked == 40


def test_sensitive_actions_are_recorded(client: Any, db_url: str, loaded_catalog: Any) -> None:
    client.post(
        "/api/v1/auth/register",
        json={"mobile": "13300001111", "password": "abc12345", "name": "审计"},
    )
    bearer(client, "13300001111", "abc12345")
    with unit_of_work(db_url) as db:
        actions = [e.action for e in db.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
        assert actions == ["catalog.load", "user.register", "auth.login"]
        # Personal data never goes into the log.
        assert "13300001111" not in str([e.detail for e in db.scalars(select(AuditEntry))])
    assert _verify(db_url).ok


def _compliance_headers(client: Any, db_url: str) -> dict[str, str]:
    return staff_headers(client, db_url, "cora", Role.compliance)


def test_compliance_searches_and_exports_the_log(
    client: Any, db_url: str, customer_headers: dict[str, str]
) -> None:
    headers = _compliance_headers(client, db_url)
    assert client.get("/api/v1/audit", headers=customer_headers).status_code == 403
    logins = client.get("/api/v1/audit", params={"action": "auth.login"}, headers=headers)
    assert logins.status_code == 200
    assert logins.json()["total"] == 2  # the customer's and the compliance officer's
    mine = client.get(
        "/api/v1/audit", params={"subject_type": "user", "action": "user.create"}, headers=headers
    ).json()
    assert mine["total"] == 1 and mine["items"][0]["detail"] == {"role": "compliance"}
    exported = client.get("/api/v1/audit/export.csv", headers=headers)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.strip().splitlines()
    assert lines[0].startswith("seq,at,actor_type") and lines[-1].split(",")[5] == "audit.export"
    future = client.get("/api/v1/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=headers)
    assert future.json()["total"] == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_verify_command_fails_on_tampering(db_url: str) -> None:
    import os

    _append(db_url, 5)
    env = {**os.environ, "COVERNET_DATABASE_URL": db_url}
    cmd = [sys.executable, "-m", "covernet.cli", "audit", "verify"]
    good = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert good.returncode == 0 and "intact" in good.stdout
    with unit_of_work(db_url) as db:
        db.execute(text("UPDATE audit_entries SET action = 'forged' WHERE seq = 2"))
    bad = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert bad.returncode == 1 and "entry 2 was altered" in bad.stderr
