"""The advisor license registry (R1, R2).

Everything that needs a license (selling, advising, hosting a live session, publishing
content) asks :func:`require_license`; an expired, suspended, revoked or out-of-scope
license is refused at once, with a code naming why.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.catalog.spec import Line
from covernet.compliance.models import AdvisorLicense, LicenseStatus
from covernet.core import clock
from covernet.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from covernet.identity.models import Role, User

LICENSE_NO = re.compile(r"^[0-9A-Z]{10,32}$")


class LicenseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    license_no: str = Field(description="执业证编号: 10–32 digits or capital letters")
    advisor_username: str = Field(max_length=64)
    institution: str = Field(min_length=2, max_length=200)
    valid_until: date
    lines: list[Line] = Field(min_length=1)
    grade: str | None = Field(default=None, max_length=32)

    @field_validator("license_no")
    @classmethod
    def _format(cls, value: str) -> str:
        value = value.strip().upper()
        if not LICENSE_NO.match(value):
            raise ValueError("a license number has 10 to 32 digits or capital letters")
        return value


class LicenseRefused(Forbidden):
    """The advisor may not do this: the code says why."""


@dataclass(frozen=True)
class LicenseView:
    license: AdvisorLicense
    advisor_name: str
    username: str | None
    effective_status: str  # expired overrides active


def effective_status(row: AdvisorLicense, on: date) -> str:
    if row.status == LicenseStatus.active.value and row.valid_until < on:
        return "expired"
    return row.status


def _advisor(db: Session, username: str) -> User:
    user = db.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None or user.role != Role.advisor.value:
        raise ValidationFailed(
            f"'{username}' is not an advisor account",
            code="unknown_advisor",
            detail={"field": "advisor_username"},
        )
    return user


def register(db: Session, data: LicenseIn, *, by: audit.Actor) -> AdvisorLicense:
    advisor = _advisor(db, data.advisor_username)
    if db.scalar(
        select(AdvisorLicense.id).where(
            (AdvisorLicense.license_no == data.license_no)
            | (AdvisorLicense.advisor_id == advisor.id)
        )
    ):
        raise Conflict(
            "this license number or advisor is already registered",
            code="license_exists",
            detail={"field": "license_no"},
        )
    row = AdvisorLicense(
        license_no=data.license_no,
        advisor_id=advisor.id,
        institution=data.institution,
        valid_until=data.valid_until,
        lines=[line.value for line in data.lines],
        grade=data.grade,
        status=LicenseStatus.active.value,
    )
    db.add(row)
    try:
        db.flush()
    except IntegrityError:
        raise Conflict(
            "this license number or advisor is already registered",
            code="license_exists",
            detail={"field": "license_no"},
        ) from None
    audit.record(
        db,
        "license.register",
        actor=by,
        subject_type="license",
        subject_id=row.id,
        detail={
            "license_no": row.license_no,
            "lines": row.lines,
            "valid_until": row.valid_until.isoformat(),
        },
    )
    return row


def set_status(
    db: Session, license_id: str, status: LicenseStatus, *, reason: str, by: audit.Actor
) -> AdvisorLicense:
    row = db.get(AdvisorLicense, license_id)
    if row is None:
        raise NotFound("no such license", detail={"field": "license_id"})
    if row.status == LicenseStatus.revoked.value:
        raise Conflict(
            "a revoked license stays revoked; register a new one", code="license_revoked"
        )
    if not reason.strip():
        raise ValidationFailed(
            "say why the status changes", code="reason_required", detail={"field": "reason"}
        )
    previous, row.status, row.updated_at = row.status, status.value, clock.now()
    audit.record(
        db,
        "license.status",
        actor=by,
        subject_type="license",
        subject_id=row.id,
        detail={"from": previous, "to": status.value, "reason": reason.strip()},
    )
    return row


def require_license(db: Session, advisor_id: str, line: Line | None = None) -> AdvisorLicense:
    """The advisor's license if it allows acting now (for ``line``); else refuse."""
    row = license_of(db, advisor_id)
    if row is None:
        raise LicenseRefused("this account holds no registered license", code="unlicensed")
    status = effective_status(row, clock.today())
    if status != LicenseStatus.active.value:
        raise LicenseRefused(f"the license is {status}", code=f"license_{status}")
    if line is not None and line.value not in row.lines:
        raise LicenseRefused(
            f"the license does not cover {line.value}",
            code="license_out_of_scope",
            detail={"line": line.value},
        )
    return row


def require_for_products(
    db: Session, advisor_id: str, product_codes: Sequence[str]
) -> AdvisorLicense:
    """:func:`require_license` for every product's line (and the license itself)."""
    held = require_license(db, advisor_id)
    snap = catalog.snapshot(db)
    for code in product_codes:
        require_license(db, advisor_id, snap.get(code).product.line)
    return held


def expiring(db: Session, within_days: int) -> list[AdvisorLicense]:
    """Active licenses expiring within ``within_days`` (or already expired), soonest first."""
    cutoff = clock.today() + timedelta(days=within_days)
    return list(
        db.scalars(
            select(AdvisorLicense)
            .where(
                AdvisorLicense.status == LicenseStatus.active.value,
                AdvisorLicense.valid_until <= cutoff,
            )
            .order_by(AdvisorLicense.valid_until)
        )
    )


CSV_FIELDS = ("license_no", "advisor_username", "institution", "valid_until", "lines", "grade")


def import_csv(db: Session, text: str, *, by: audit.Actor) -> list[AdvisorLicense]:
    """Register every row or none: problems are listed by line number."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [f for f in CSV_FIELDS[:-1] if f not in (reader.fieldnames or [])]
    if missing:
        raise ValidationFailed(
            f"the CSV lacks columns {missing}", code="invalid_csv", detail={"missing": missing}
        )
    problems: list[dict[str, Any]] = []
    created: list[AdvisorLicense] = []
    for number, raw in enumerate(reader, start=2):
        try:
            data = LicenseIn(
                license_no=raw["license_no"] or "",
                advisor_username=raw["advisor_username"] or "",
                institution=raw["institution"] or "",
                valid_until=raw["valid_until"],
                lines=[p.strip() for p in (raw["lines"] or "").split("|") if p.strip()],
                grade=(raw.get("grade") or None),
            )
            created.append(register(db, data, by=by))
        except ValidationError as exc:
            problems.extend(
                {"line": number, "field": ".".join(str(x) for x in e["loc"]), "message": e["msg"]}
                for e in exc.errors(include_url=False)
            )
        except (ValidationFailed, Conflict) as exc:
            problems.append(
                {"line": number, "field": (exc.detail or {}).get("field"), "message": exc.message}
            )
    if problems:  # raising rolls the whole unit of work back: nothing is imported
        summary = "; ".join(f"line {p['line']}: {p['message']}" for p in problems[:5])
        raise ValidationFailed(
            f"nothing was imported: {summary}", code="invalid_csv", detail={"problems": problems}
        )
    return created


def all_licenses(db: Session) -> list[AdvisorLicense]:
    return list(db.scalars(select(AdvisorLicense).order_by(AdvisorLicense.valid_until)))


def license_of(db: Session, advisor_id: str) -> AdvisorLicense | None:
    return db.scalar(select(AdvisorLicense).where(AdvisorLicense.advisor_id == advisor_id))
