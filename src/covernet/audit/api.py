"""Compliance reads the audit log: search and CSV export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from covernet.audit import service
from covernet.audit.models import AuditEntry
from covernet.core.db import unit_of_work
from covernet.core.pagination import Page, PageParams, page_params
from covernet.identity.access import Db, Principal, allow
from covernet.identity.models import Role

router = APIRouter(prefix="/api/v1", tags=["audit"])

Auditor = Annotated[Principal, allow(Role.compliance, Role.admin)]


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    actor_type: str
    actor_id: str | None
    actor_role: str | None
    action: str
    subject_type: str | None
    subject_id: str | None
    detail: dict[str, Any]
    hash: str


def _filters(
    actor_id: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    subject_type: Annotated[str | None, Query(max_length=32)] = None,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="from this time (inclusive)")] = None,
    until: Annotated[datetime | None, Query(description="before this time")] = None,
) -> service.Filters:
    return service.Filters(actor_id, action, subject_type, subject_id, since, until)


Filters = Annotated[service.Filters, Depends(_filters)]


def actor_of(who: Principal) -> service.Actor:
    if who.api_key_id:
        return service.Actor("api_key", who.api_key_id, who.role.value if who.role else None)
    return service.Actor("user", who.user_id, who.role.value if who.role else None)


def _out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut.model_validate(entry, from_attributes=True)


@router.get("/audit", response_model=Page[AuditEntryOut])
def search_audit(
    db: Db, who: Auditor, filters: Filters, paging: Annotated[PageParams, Depends(page_params)]
) -> Page[AuditEntryOut]:
    """Search by actor, action, subject and time; newest first."""
    rows, total = service.search(db, filters, offset=paging.offset, limit=paging.size)
    return Page(items=[_out(r) for r in rows], page=paging.page, size=paging.size, total=total)


CSV_COLUMNS = (
    "seq",
    "at",
    "actor_type",
    "actor_id",
    "actor_role",
    "action",
    "subject_type",
    "subject_id",
    "detail",
    "prev_hash",
    "hash",
)


@router.get("/audit/export.csv", response_class=StreamingResponse)
def export_audit(db: Db, who: Auditor, filters: Filters) -> StreamingResponse:
    """The matching entries as CSV, oldest first, with their hashes (the export is
    itself recorded)."""
    service.record(
        db,
        "audit.export",
        actor=actor_of(who),
        detail={k: str(v) for k, v in vars(filters).items() if v is not None},
    )

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        with unit_of_work() as own:
            for entry in service.export(own, filters):
                writer.writerow(
                    [
                        entry.seq,
                        entry.at.isoformat(),
                        entry.actor_type,
                        entry.actor_id or "",
                        entry.actor_role or "",
                        entry.action,
                        entry.subject_type or "",
                        entry.subject_id or "",
                        json.dumps(entry.detail, ensure_ascii=False, sort_keys=True),
                        entry.prev_hash,
                        entry.hash,
                    ]
                )
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )
