"""Shared set-up of the desk tests: advisors with licenses and desk profiles."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from covernet.identity.models import Role
from tests.conftest import add_staff

_count = [0]


def advisor(
    db_url: str,
    username: str,
    *,
    lines: list[str] | None = None,
    skills: list[str] | None = None,
    availability: str = "online",
    max_open: int = 5,
    valid_days: int = 365,
    licensed: bool = True,
    name: str = "王顾问",
    role: Role = Role.advisor,
) -> str:
    """A staff account at the desk; with a license for ``lines`` unless ``licensed`` is
    False (valid for ``valid_days``; negative: expired)."""
    from covernet.audit import service as audit
    from covernet.compliance import licenses
    from covernet.consult import service
    from covernet.consult.models import Availability
    from covernet.core import clock
    from covernet.core.db import unit_of_work

    user_id, _ = add_staff(db_url, username, role, name=name)
    lines = lines if lines is not None else ["medical", "accident"]
    with unit_of_work(db_url) as db:
        if licensed and role is Role.advisor:
            _count[0] += 1
            licenses.register(
                db,
                licenses.LicenseIn(
                    license_no=f"LIC{abs(hash(username)) % 10**9:09d}{_count[0]:04d}",
                    advisor_username=username,
                    institution="示例安心财产保险股份有限公司",
                    valid_until=clock.today() + timedelta(days=valid_days),
                    lines=lines,
                ),
                by=audit.SYSTEM,
            )
        service.set_agent(
            db,
            user_id,
            skills=skills if skills is not None else lines,
            availability=Availability(availability),
            max_open=max_open,
        )
    return user_id


def principal(user_id: str, role: Role = Role.advisor) -> Any:
    from covernet.identity.access import Principal

    return Principal(role=role, user_id=user_id, name="x", method="bearer")
