"""The sandbox provider's own pages and test hooks (mounted only when the sandbox is
the configured provider): the pay page, and ``POST /sandbox/payments/{id}/succeed`` /
``…/fail`` that make the sandbox send its callback (tests and demos)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from covernet.core.db import unit_of_work_async
from covernet.core.fastlane import Lane
from covernet.core.money import format_fen
from covernet.identity.access import Db, open_route
from covernet.payments import service
from covernet.payments.providers import sandbox
from covernet.web.render import mark_page, render

router = APIRouter(tags=["sandbox"])


def _page(request: Request, db: Db, payment_id: str, done: str | None = None) -> Response:
    payment = service.get_payment(db, payment_id)
    payee_name, payee_account = service.payee_of(db, payment)
    return render(
        request,
        "sandbox_pay.html",
        toggle_path=f"/sandbox/pay/{payment.id}",
        payment=payment,
        amount=format_fen(sandbox.order_amount(db, payment.id)),
        payee_name=payee_name,
        payee_account=payee_account,
        order_status=sandbox.order_status(db, payment.id),
        done=done,
        back=payment.return_path,
    )


@router.get("/sandbox/pay/{payment_id}", response_class=HTMLResponse, include_in_schema=False)
@open_route
def pay_page(payment_id: str, request: Request, db: Db) -> Response:
    """The sandbox's pay page: amount, payee (the insurer's premium account), 支付 / 模拟失败."""
    mark_page(request)
    return _page(request, db, payment_id)


@router.post(
    "/sandbox/pay/{payment_id}/{outcome}", response_class=HTMLResponse, include_in_schema=False
)
@open_route
def pay_page_submit(payment_id: str, outcome: str, request: Request, db: Db) -> Response:
    mark_page(request)
    sandbox.complete(db, payment_id, _outcome(outcome))
    return _page(request, db, payment_id, done=_outcome(outcome))


def _outcome(value: str) -> str:
    from covernet.core.errors import NotFound

    if value == "succeed":
        return "succeeded"
    if value == "fail":
        return "failed"
    raise NotFound("no such action", code="not_found")


@router.post("/sandbox/payments/{payment_id}/{outcome}")
@open_route
async def complete(
    payment_id: str,
    outcome: str,
    duplicate: Annotated[bool, Query(description="deliver the callback twice")] = False,
    delay_seconds: Annotated[float, Query(ge=0, le=3600)] = 0,
) -> dict[str, Any]:
    """Make the sandbox pay (``succeed``) or fail the payment and queue its signed
    callback (twice with ``duplicate``; after ``delay_seconds``)."""
    done = await unit_of_work_async(
        lambda db: sandbox.complete(
            db, payment_id, _outcome(outcome), duplicate=duplicate, delay_seconds=delay_seconds
        )
    )
    return {
        "payment_id": done.payment_id,
        "outcome": done.outcome,
        "event_id": done.event_id,
        "callbacks": done.copies,
        "deliver_at": done.deliver_at.isoformat(),
    }


async def _complete_lane(request: Request, found: re.Match[str]) -> Response | None:
    if request.url.query:
        return None  # duplicate, delay_seconds: checked by the route
    return JSONResponse(await complete(found.group(1), found.group(2)))


# The sandbox's pay action served before FastAPI's routing (covernet.core.fastlane).
LANES = (Lane("POST", re.compile(r"^/sandbox/payments/([^/]+)/([^/]+)$"), _complete_lane),)
