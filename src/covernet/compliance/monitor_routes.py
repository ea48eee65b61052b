"""Service-standard monitors: the JSON route and the compliance console page."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from covernet.compliance import monitors
from covernet.core import clock, i18n
from covernet.identity.access import Db, Principal, Public, allow
from covernet.identity.models import Role
from covernet.web.console import console_guard
from covernet.web.render import render

api_router = APIRouter(prefix="/api/v1", tags=["compliance"])
page_router = APIRouter()

Officer = Annotated[Principal, allow(Role.compliance, Role.admin)]
OFFICERS = frozenset({Role.compliance, Role.admin})


class MonitorsOut(BaseModel):
    as_of: date
    figures: list[monitors.Figure]


@api_router.get("/compliance/monitors", response_model=MonitorsOut)
def list_monitors(db: Db, who: Officer) -> MonitorsOut:
    """Every service-standard figure (R1, R3; later R17–R21) with the items behind it."""
    today = clock.today()
    return MonitorsOut(as_of=today, figures=monitors.evaluate(db, today))


def bar(figure: monitors.Figure) -> dict[str, Any] | None:
    """The bar under a figure, in percent of its width: a rate, or a count against a limit."""
    if figure.status == "error":
        return None
    if figure.meter is not None:
        meter = figure.meter
        scale = max(2 * meter.limit, meter.value, 1)
        return {
            "fill": round(100 * min(meter.value, scale) / scale),
            "mark": round(100 * meter.limit / scale),
            "value": meter.value,
            "limit": meter.limit,
            "unit": meter.unit,
        }
    if figure.percent is not None:
        return {"fill": figure.percent, "mark": None, "value": figure.value, "total": figure.total}
    return None


@page_router.get("/console/monitors", response_class=HTMLResponse)
def monitors_console(request: Request, db: Db, who: Public) -> Response:
    guard = console_guard(
        who,
        OFFICERS,
        "/console/monitors",
        "the service-standard monitors are for compliance and administrators",
    )
    if guard is not None:
        return guard
    today, lang = clock.today(), i18n.negotiate_lang(request)
    cards = [
        {"figure": f, "bar": bar(f), "rule": i18n.translate_or(f.rule, lang, "", f.thresholds)}
        for f in monitors.evaluate(db, today)
    ]
    return render(request, "monitors_console.html", today=today, cards=cards)
