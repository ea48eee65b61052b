"""Public e-policy verification: ``GET /verify/{code}`` (a phone-friendly page) and
``GET /api/v1/verify/{code}`` (the same facts as JSON)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from covernet.core import i18n
from covernet.core.errors import CovernetError
from covernet.identity.access import Db, Public
from covernet.policies import verification
from covernet.web.render import mark_page, render

api_router = APIRouter(prefix="/api/v1", tags=["policies"])
page_router = APIRouter(dependencies=[Depends(mark_page)], include_in_schema=False)


class VerificationOut(BaseModel):
    genuine: bool = Field(description="always true: an unknown code is answered 404")
    policy_no: str
    product_name: dict[str, str | None]
    product_version: int
    insurer_name: dict[str, str | None]
    status: str = Field(description="as of checked_on: " + " | ".join(verification.STATUSES))
    status_label: dict[str, str]
    effective_date: date
    end_date: date | None = Field(description="none for whole-life cover")
    insured_name: str | None = Field(
        description="masked: the first character only; none for a partner's micro-policy"
    )
    checked_on: date


def _status_label(status: str) -> dict[str, str]:
    return {lang: i18n.translate(f"verify.status.{status}", lang) for lang in i18n.LANGS}


@api_router.get("/verify/{code}", response_model=VerificationOut)
def verify_policy(code: str, db: Db, _: Public) -> VerificationOut:
    """Whether a verification code belongs to a genuine policy, and its status today;
    404 ``not_genuine`` otherwise."""
    found = verification.verify(db, code)
    return VerificationOut(
        genuine=True,
        policy_no=found.policy_no,
        product_name=found.product_name.model_dump(),
        product_version=found.product_version,
        insurer_name=found.insurer_name.model_dump(),
        status=found.status,
        status_label=_status_label(found.status),
        effective_date=found.effective_date,
        end_date=found.end_date,
        insured_name=found.insured_name,
        checked_on=found.checked_on,
    )


@page_router.get("/verify/{code}", response_class=HTMLResponse)
def verify_page(code: str, request: Request, db: Db, _: Public) -> HTMLResponse:
    try:
        found = verification.verify(db, code)
    except CovernetError as error:
        if error.code != "not_genuine":
            raise
        return render(request, "verify.html", status=404, found=None, code=code[:32])
    return render(request, "verify.html", found=found, code=found.code)
