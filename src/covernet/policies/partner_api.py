"""JSON route for partners issuing embedded micro-policies in batches."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from covernet.core.bodies import json_body_doc
from covernet.core.errors import CovernetError
from covernet.identity.access import Principal, allow
from covernet.identity.models import Role
from covernet.policies import partner
from covernet.policies.partner import MAX_BODY_BYTES, BatchIn

router = APIRouter(prefix="/api/v1/partner", tags=["partner"])

PartnerKey = Annotated[Principal, allow(Role.partner)]


class ItemOut(BaseModel):
    external_ref: str | None
    status: Literal["issued", "rejected"]
    policy_no: str | None = None
    premium_fen: int | None = None
    duplicate: bool | None = None
    error: str | None = None
    message: str | None = None


class BatchOut(BaseModel):
    batch_id: str
    partner_code: str
    items: int
    issued: int
    duplicates: int
    rejected: int
    premium_fen: int
    results: list[ItemOut]


@router.post("/policies:batch", response_model=BatchOut, openapi_extra=json_body_doc(BatchIn))
async def issue_batch(request: Request, who: PartnerKey) -> Response:
    """Issue up to 1,000 prepaid micro-policies (one per ``external_ref``).

    Every item is answered on its own, in input order: ``issued`` with the policy number
    and the premium computed from the catalog (``duplicate: true`` when the reference
    was issued before: the first answer again), or ``rejected`` with ``error`` and
    ``message``.  A bad item never blocks the good ones.  ``issued`` and ``premium_fen``
    count the policies new in this call."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise CovernetError(
            f"a batch body is at most {MAX_BODY_BYTES // (1024 * 1024)} MiB",
            code="payload_too_large",
            status=413,
        )
    result = await run_in_threadpool(partner.issue_batch_now, raw, who)
    body: dict[str, Any] = result.body()
    return Response(orjson.dumps(body), media_type="application/json")
