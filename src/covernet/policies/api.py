"""JSON routes for quotes."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from covernet.core.bodies import json_body_doc, parse_json_body
from covernet.core.fastlane import Lane
from covernet.identity.access import Db, Public, identify, public_route
from covernet.policies.quotes import QuoteIn, QuoteResult, create_quote_now, get_quote

router = APIRouter(prefix="/api/v1", tags=["quotes"])


class DisclosureOut(BaseModel):
    code: str
    text: dict[str, str | None]
    emphasis: bool
    rule: str


class QuoteOut(BaseModel):
    quote_id: str
    product_code: str
    product_version: int
    plan_code: str
    term: str
    payment: str
    frequency: str
    premium_fen: int
    sum_insured_fen: int
    currency: str
    insured: dict[str, Any]
    effective_date: date
    end_date: date | None
    valid_until: datetime
    disclosures: list[DisclosureOut]


def quote_body(result: QuoteResult) -> dict[str, Any]:
    """The response body (the shape of :class:`QuoteOut`), built without revalidation."""
    q = result.quote
    return {
        "quote_id": q.id,
        "product_code": q.product_code,
        "product_version": result.version,
        "plan_code": q.plan_code,
        "term": q.term_code,
        "payment": q.payment_code,
        "frequency": q.frequency,
        "premium_fen": q.premium_fen,
        "sum_insured_fen": q.sum_insured_fen,
        "currency": q.currency,
        "insured": {
            "age": q.insured_age,
            "gender": q.insured_gender,
            "region": q.region,
            "occupation_class": q.occupation_class,
            "id_number": result.id_number_masked,
        },
        "effective_date": q.effective_date,
        "end_date": q.end_date,
        "valid_until": q.valid_until,
        "disclosures": [d.body for d in result.disclosures],
    }


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@router.post(
    "/quotes", status_code=201, response_model=QuoteOut, openapi_extra=json_body_doc(QuoteIn)
)
@public_route
async def post_quote(request: Request) -> Response:
    """Price a plan for an insured (anyone may; a signed-in customer's quote is theirs).

    Answers once the quote is stored.  The hot path of the platform: the body is parsed
    straight from JSON and anonymous callers cost no database read.
    """
    body = parse_json_body(QuoteIn, await request.body())
    who = await identify(request)
    return _json(quote_body(await create_quote_now(body, who)), 201)


@router.get("/quotes/{quote_id}", response_model=QuoteOut)
def read_quote(quote_id: str, db: Db, who: Public) -> Response:
    return _json(quote_body(get_quote(db, quote_id, who)))


async def _quote_lane(request: Request, _found: re.Match[str]) -> Response | None:
    answer: Response = await post_quote(request)
    return answer


# The quote route served before FastAPI's routing (covernet.core.fastlane).
LANES = (Lane("POST", re.compile(r"^/api/v1/quotes$"), _quote_lane),)
