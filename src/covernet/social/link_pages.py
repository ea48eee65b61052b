"""Pages: the share landing ``/s/{code}`` (sets the attribution cookie) and the sharer's
funnel pages ``/console/links`` (advisors) and ``/account/links`` (customers)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from covernet.core.config import get_settings
from covernet.identity.access import Db, Public
from covernet.identity.models import Role
from covernet.social import attribution, links
from covernet.web.render import mark_page, render

router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)
BAR_WIDTH = 180


def _set_cookie(response: Response, code: str) -> None:
    settings = get_settings()
    response.set_cookie(
        attribution.COOKIE,
        attribution.sign(code),
        max_age=settings.share_cookie_days * 86400,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


@router.get("/s/{code}")
def landing(code: str, request: Request, db: Db, _: Public) -> Response:
    """Record the visit, remember the link in a signed first-party cookie and land on the
    target; an advisor's link first shows the advisor's identity block (R2)."""
    found = links.visit(db, code)
    response: Response
    if found.advisor is not None:
        response = render(
            request,
            "share_landing.html",
            path=found.path,
            advisor=found.advisor,
            product_name=found.product_name,
        )
    else:
        response = RedirectResponse(found.path, status_code=303)
    _set_cookie(response, found.link.code)
    return response


def _bars(stats: links.LinkStats) -> list[dict[str, Any]]:
    counts = stats.funnel.counts
    top = max(counts.values(), default=0) or 1
    rates = stats.funnel.rates
    return [
        {
            "kind": kind.value,
            "count": counts.get(kind.value, 0),
            "width": round(BAR_WIDTH * counts.get(kind.value, 0) / top),
            "rate": (
                None
                if kind is links.FUNNEL[0] or rates[kind.value] is None
                else round(100 * (rates[kind.value] or 0), 1)
            ),
        }
        for kind in links.FUNNEL
    ]


def _page(request: Request, db: Db, who: Any, path: str) -> Response:
    if not who.is_authenticated:
        return RedirectResponse(f"/login?next={path}", status_code=303)
    items = [
        {
            "code": s.link.code,
            "path": links.target_path(s.link.target_kind, s.link.target_id),
            "bars": _bars(s),
            "chain": s.funnel.chain,
        }
        for s in links.own_links(db, who)
    ]
    return render(request, "share_links.html", items=items)


@router.get("/console/links", response_class=HTMLResponse)
def console_links(request: Request, db: Db, who: Public) -> Response:
    if who.is_authenticated and who.role is not Role.advisor:
        return RedirectResponse("/account/links", status_code=303)
    return _page(request, db, who, "/console/links")


@router.get("/account/links", response_class=HTMLResponse)
def account_links(request: Request, db: Db, who: Public) -> Response:
    return _page(request, db, who, "/account/links")
