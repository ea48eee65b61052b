"""The compliance console's audit log page: search, page through, export."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from covernet.audit import service
from covernet.core.clock import SHANGHAI
from covernet.identity.access import Db, Public
from covernet.identity.models import Role
from covernet.web.console import console_guard
from covernet.web.render import render

router = APIRouter()

AUDITORS = frozenset({Role.compliance, Role.admin})
PAGE_SIZE = 50


def _day_start(day: date | None) -> datetime | None:
    """A date chosen on the page is a Beijing date."""
    return None if day is None else datetime.combine(day, time(), tzinfo=SHANGHAI)


@router.get("/console/audit", response_class=HTMLResponse)
def audit_console(
    request: Request,
    db: Db,
    who: Public,
    actor_id: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    subject_type: Annotated[str | None, Query(max_length=32)] = None,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[date | None, Query()] = None,
    until: Annotated[date | None, Query()] = None,
    page: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    if guard := console_guard(
        who, AUDITORS, "/console/audit", "the audit log is for compliance and administrators"
    ):
        return guard
    filters = service.Filters(
        actor_id or None,
        action or None,
        subject_type or None,
        subject_id or None,
        _day_start(since),
        _day_start(until),
    )
    rows, total = service.search(db, filters, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    query = {
        k: v
        for k, v in {
            "actor_id": actor_id,
            "action": action,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "since": since,
            "until": until,
        }.items()
        if v
    }
    api_query = {k: v for k, v in query.items() if k not in ("since", "until")}
    if filters.since:
        api_query["since"] = filters.since.isoformat()
    if filters.until:
        api_query["until"] = filters.until.isoformat()
    entries = [
        {
            "seq": e.seq,
            "at": e.at,
            "actor_type": e.actor_type,
            "actor_id": e.actor_id,
            "actor_role": e.actor_role,
            "action": e.action,
            "subject_type": e.subject_type,
            "subject_id": e.subject_id,
            "detail_text": json.dumps(e.detail, ensure_ascii=False, sort_keys=True)
            if e.detail
            else "",
        }
        for e in rows
    ]
    return render(
        request,
        "audit_console.html",
        filters=filters,
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        entries=entries,
        total=total,
        export_url="/api/v1/audit/export.csv?" + urlencode(api_query),
        prev_url=f"/console/audit?{urlencode({**query, 'page': page - 1})}" if page > 1 else None,
        next_url=(
            f"/console/audit?{urlencode({**query, 'page': page + 1})}"
            if page * PAGE_SIZE < total
            else None
        ),
    )
