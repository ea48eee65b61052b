"""Public verification of an e-policy (R16): is this code a genuine policy's, and what
is its status today?

Anyone holding the printed code may ask, so the answer is limited to what identifies the
policy: its number, product, insurer, status as of today, dates and the insured's name
masked to its first character (``张*``).  Never an ID number, the applicant, amounts or
beneficiaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from covernet.catalog import service as catalog
from covernet.core import clock
from covernet.core.crypto import get_cipher
from covernet.core.errors import NotFound
from covernet.core.i18n_text import I18nText
from covernet.core.masking import mask_name
from covernet.policies import policies
from covernet.policies.applications import NAME_CONTEXT
from covernet.policies.models import Application

# Codes are 12 characters of Crockford's base 32 (issuance.ALPHABET); anything else is
# answered "not genuine" without a query.
_CODE = re.compile(r"[0-9A-Za-z]{8,16}")

STATUSES = ("in_force", "pending", "cancelled", "surrendered", "expired")


@dataclass(frozen=True)
class Verification:
    code: str
    policy_no: str
    product_name: I18nText
    product_version: int
    insurer_name: I18nText
    status: str  # one of STATUSES, as of ``checked_on``
    effective_date: date
    end_date: date | None
    insured_name: str | None  # masked; None for a partner's micro-policy
    checked_on: date


def not_genuine() -> NotFound:
    return NotFound(
        "this is not the verification code of a genuine policy",
        code="not_genuine",
        detail={"field": "code"},
    )


def verify(db: Session, code: str) -> Verification:
    """The facts a verification shows; :func:`not_genuine` for an unknown code."""
    code = code.strip()
    if not _CODE.fullmatch(code):
        raise not_genuine()
    policy = policies.by_verification_code(db, code)
    if policy is None:
        raise not_genuine()
    product, version = catalog.product_at_version(db, policy.product_version_id)
    insurer = catalog.snapshot(db).insurers[policy.insurer_code]
    # A partner's embedded micro-policy has no application, so no name to show.
    app = db.get(Application, policy.application_id) if policy.application_id else None
    insured = (
        mask_name(get_cipher().decrypt(app.insured_name_enc, context=NAME_CONTEXT))
        if app is not None
        else None
    )
    today = clock.today()
    return Verification(
        code=policy.verification_code,
        policy_no=policy.policy_no,
        product_name=product.name,
        product_version=version,
        insurer_name=insurer.legal_name,
        status=policies.effective_status(policy, today),
        effective_date=policy.effective_date,
        end_date=policy.end_date,
        insured_name=insured,
        checked_on=today,
    )
