"""Advisor licenses: the registry every licensed action asks (R1)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from covernet.core import clock
from covernet.core.db import Base, UtcDateTime
from covernet.core.ids import new_id


class LicenseStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    revoked = "revoked"


class AdvisorLicense(Base):
    __tablename__ = "advisor_licenses"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    license_no: Mapped[str] = mapped_column(String(32), unique=True)  # 执业证编号
    advisor_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), unique=True
    )
    institution: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=LicenseStatus.active.value)
    valid_until: Mapped[date] = mapped_column(Date)
    lines: Mapped[list[str]] = mapped_column(JSON)
    grade: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=clock.now)
