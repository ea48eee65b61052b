"""What the purchase pages show and read: the apply form's steps, the posted form as the
application service's input, service errors placed next to their form field, and the
progress of an application.  No routes here (see ``policies/pages.py``).

The form never decides anything the service decides: it only translates.  A confirmed
document is sent back with the ``content_hash`` of the text that was shown (a hidden
input next to its checkbox), unanswered health questions stay unanswered, and nothing
is ticked for the buyer (R8, R13).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from covernet.catalog.disclosures import UNCERTAINTY_STATEMENT, Disclosure
from covernet.catalog.documents import SaleDocument
from covernet.catalog.spec import Product
from covernet.core import clock, i18n
from covernet.core.errors import NotFound, ValidationFailed
from covernet.core.money import format_fen, format_fen_compact
from covernet.identity.access import Principal
from covernet.policies.applications import ApplicationIn
from covernet.policies.models import Application, ApplicationStatus, Quote

RELATIONSHIPS = ("self", "spouse", "child", "parent")
BENEFICIARY_RELATIONSHIPS = ("spouse", "child", "parent", "sibling")
BENEFICIARY_ROWS = 3
# Plain-words reasons on the status page; anything else reads as "other".
DECLINE_REASONS = frozenset(
    {
        "age_out_of_range",
        "occupation_not_covered",
        "health_declined",
        "gift_limit_reached",
        "gift_premium_too_high",
        "accumulation_exceeded",
        "underwriter",
    }
)
REFER_REASONS = frozenset({"health_review", "accumulation_review"})
SUITABILITY_WARNINGS = frozenset(
    {"duplicate_indemnity", "affordability", "senior_long_term", "uncertain_benefits"}
)
# A referred application is decided by an underwriter within this many working days.
REFERRAL_DECISION_WORKING_DAYS = 2
PROGRESS = ("apply", "pay", "underwrite", "issue")
STEP_CODES = (
    "terms",
    "exclusions",
    "disclosures",
    "health",
    "people",
    "consent",
    "statement",
    "submit",
)


@dataclass(frozen=True)
class Step:
    code: str  # terms | exclusions | disclosures | health | people | consent | statement | submit
    documents: tuple[str, ...] = ()


def steps_for(product: Product) -> list[Step]:
    """The apply form's steps in order; key clauses come first, on their own (R13)."""
    steps = [Step("terms", ("terms",)), Step("exclusions", ("exclusions",))]
    steps.append(Step("disclosures", ("disclosures",)))
    if product.health_questions:
        steps.append(Step("health", ("health_notice",)))
    steps += [Step("people"), Step("consent", ("privacy", "sensitive_data"))]
    if product.uncertain_benefits:
        steps.append(Step("statement"))
    steps.append(Step("submit"))
    return steps


# The posted form -------------------------------------------------------------------------


@dataclass
class Posted:
    """What the buyer entered, to show again after an error (nothing added)."""

    form_token: str = ""
    applicant_name: str = ""
    applicant_id_number: str = ""
    relationship: str = "self"
    insured_name: str = ""
    insured_id_number: str = ""
    beneficiary_mode: str = "statutory"
    beneficiaries: list[dict[str, str]] = field(default_factory=list)
    health: dict[str, str] = field(default_factory=dict)
    confirmed: set[str] = field(default_factory=set)
    uncertainty_statement: str = ""
    suitability_warnings: list[str] = field(default_factory=list)
    suitability_continue: bool = False


def _text(form: FormData, name: str, limit: int = 200) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def read_form(form: FormData, product: Product, docs: list[SaleDocument]) -> Posted:
    rows = [
        {
            "name": _text(form, f"beneficiary.{i}.name", 40),
            "relationship": _text(form, f"beneficiary.{i}.relationship", 16),
            "share": _text(form, f"beneficiary.{i}.share", 3),
        }
        for i in range(BENEFICIARY_ROWS)
    ]
    relationship = _text(form, "relationship", 16)
    return Posted(
        form_token=_text(form, "form_token", 64),
        applicant_name=_text(form, "applicant_name", 40),
        applicant_id_number=_text(form, "applicant_id_number", 20),
        relationship=relationship if relationship in RELATIONSHIPS else "",
        insured_name=_text(form, "insured_name", 40),
        insured_id_number=_text(form, "insured_id_number", 20),
        beneficiary_mode="named" if _text(form, "beneficiary_mode") == "named" else "statutory",
        beneficiaries=rows,
        health={
            q.code: answer
            for q in product.health_questions
            if (answer := _text(form, f"health.{q.code}", 3)) in ("yes", "no")
        },
        confirmed={d.code for d in docs if _text(form, f"confirm.{d.code}", 3) == "yes"},
        uncertainty_statement=_text(form, "uncertainty_statement", 200),
        suitability_warnings=[
            w for w in form.getlist("suitability_warning") if w in SUITABILITY_WARNINGS
        ],
        suitability_continue=_text(form, "suitability_continue", 3) == "yes",
    )


def _wrong(code: str, message: str, name: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, detail={"field": name})


def _person(name: str, id_number: str, prefix: str) -> dict[str, str]:
    if not 2 <= len(name) <= 40:
        raise _wrong("person_name_required", "give the full name (2 to 40 characters)", prefix)
    if not 15 <= len(id_number) <= 20:
        raise _wrong("invalid_id_number", "enter the 18-character ID number", f"{prefix}.id_number")
    return {"name": name, "id_number": id_number}


def _beneficiaries(posted: Posted) -> list[dict[str, Any]] | None:
    if posted.beneficiary_mode != "named":
        return None  # the statutory heirs (法定)
    out = []
    for row in posted.beneficiaries:
        if not any(row.values()):
            continue
        if (
            not 2 <= len(row["name"]) <= 40
            or row["relationship"] not in BENEFICIARY_RELATIONSHIPS
            or not row["share"].isdigit()
            or not 1 <= int(row["share"]) <= 100
        ):
            raise _wrong(
                "beneficiary_incomplete",
                "give each beneficiary's name, relationship and share (1 to 100%)",
                "beneficiaries",
            )
        out.append(
            {
                "name": row["name"],
                "relationship": row["relationship"],
                "share_percent": int(row["share"]),
            }
        )
    return out


def application_input(
    quote_id: str, form: FormData, posted: Posted, docs: list[SaleDocument]
) -> ApplicationIn:
    """The posted form as :class:`ApplicationIn`, or the first thing it cannot be."""
    if not posted.relationship:
        raise _wrong("relationship_required", "say who the insured is to you", "relationship")
    data: dict[str, Any] = {
        "quote_id": quote_id,
        "applicant": _person(posted.applicant_name, posted.applicant_id_number, "applicant"),
        "relationship": posted.relationship,
    }
    if posted.relationship != "self":
        data["insured"] = _person(posted.insured_name, posted.insured_id_number, "insured")
    data["beneficiaries"] = _beneficiaries(posted)
    data["health_answers"] = {code: answer == "yes" for code, answer in posted.health.items()}
    data["acknowledgements"] = {
        d.code: sent
        for d in docs
        if d.code in posted.confirmed and (sent := _text(form, f"doc_hash.{d.code}", 64))
    }
    if posted.uncertainty_statement:
        data["uncertainty_statement"] = posted.uncertainty_statement
    if renewal_of := _text(form, "renewal_of", 36):
        data["renewal_of"] = renewal_of
    if posted.suitability_continue:
        data["suitability_confirmed"] = posted.suitability_warnings
    data["shown"] = [
        {"document": d.code, "shown_at": at}
        for d in docs
        if (at := _text(form, f"shown.{d.code}", 40))
    ]
    try:
        return ApplicationIn.model_validate(data)
    except ValidationError as exc:
        loc = [str(part) for part in exc.errors()[0]["loc"]]
        raise _wrong("malformed_request", exc.errors()[0]["msg"], ".".join(loc)) from None


# Errors next to their field --------------------------------------------------------------


def form_field(service_field: str | None) -> str:
    """The form field a service error names (``acknowledgements.terms`` -> ``confirm.terms``)."""
    if not service_field:
        return "form"
    head, _, rest = service_field.partition(".")
    if head == "acknowledgements" and rest:
        return f"confirm.{rest}"
    if head == "health_answers" and rest:
        return f"health.{rest}"
    if head in ("applicant", "insured"):
        if rest == "name" or (head == "insured" and not rest):
            return f"{head}_name"
        return f"{head}_id_number"
    if head.startswith("beneficiaries"):
        return "beneficiaries"
    if head == "suitability_confirmed":
        return "suitability"
    if head in ("relationship", "uncertainty_statement"):
        return head
    return "form"


def step_of(name: str, steps: list[Step]) -> str:
    """The step that holds form field ``name`` (where the page opens after an error)."""
    if name.startswith("confirm."):
        code = name.removeprefix("confirm.")
        for step in steps:
            if code in step.documents:
                return step.code
    if name.startswith("health."):
        return "health"
    if name.startswith(("applicant", "insured")) or name in ("relationship", "beneficiaries"):
        return "people"
    if name == "uncertainty_statement":
        return "statement"
    return "submit"


# The quote behind the form ---------------------------------------------------------------


@dataclass(frozen=True)
class QuoteState:
    quote: Quote
    application_id: str | None  # already applied from this quote (the caller's)
    expired: bool


def quote_for_page(db: Session, who: Principal, quote_id: str) -> QuoteState:
    """The caller's quote (or an anonymous one, which becomes theirs on applying)."""
    quote = db.get(Quote, quote_id)
    if quote is None or quote.customer_id not in (None, who.user_id):
        raise NotFound("no such quote", code="unknown_quote", detail={"field": "quote_id"})
    used = db.scalar(select(Application).where(Application.quote_id == quote.id))
    if used is not None and used.customer_id != who.user_id:
        raise NotFound("no such quote", code="unknown_quote", detail={"field": "quote_id"})
    return QuoteState(
        quote=quote,
        application_id=used.id if used is not None else None,
        expired=clock.as_utc(quote.valid_until) <= clock.now(),
    )


def shown_now() -> str:
    """When the page was rendered (the step times the script records replace it)."""
    return clock.now().isoformat(timespec="seconds")


# Views -----------------------------------------------------------------------------------


def quote_summary(quote: Quote, product: Product, lang: str) -> dict[str, Any]:
    plan = product.plan(quote.plan_code)
    term = product.term(quote.term_code)
    key = f"freq.unit.{quote.frequency}"
    return {
        "product": product.name.get(lang),
        "plan": plan.name.get(lang) if plan else quote.plan_code,
        "premium": format_fen(quote.premium_fen),
        "unit": i18n.translate(key, lang) if i18n.has_message(key) else "",
        "sum_insured": format_fen_compact(quote.sum_insured_fen, lang=lang),
        "term": term.label.get(lang) if term else quote.term_code,
        "effective_date": i18n.format_date(quote.effective_date, lang),
        "valid_until": i18n.format_datetime(quote.valid_until, lang),
    }


def document_view(
    docs: list[SaleDocument], disclosures: list[Disclosure], lang: str
) -> dict[str, dict[str, Any]]:
    """Each document's title, paragraphs (emphasis where the disclosure asks) and hash."""
    emphasis = {d.text.zh: d.emphasis for d in disclosures}
    out = {}
    for doc in docs:
        out[doc.code] = {
            "code": doc.code,
            "title": doc.title.get(lang),
            "hash": doc.content_hash,
            "paragraphs": [
                {
                    "text": p.get(lang),
                    "emphasis": doc.code == "disclosures" and emphasis.get(p.zh, False),
                }
                for p in doc.paragraphs
            ],
        }
    return out


def statement() -> str:
    return UNCERTAINTY_STATEMENT


@dataclass(frozen=True)
class Progress:
    steps: list[dict[str, Any]]  # code, state (done | current | failed | todo), current
    current: str


def progress_of(status: str, payment_status: str | None) -> Progress:
    """投保 → 支付 → 核保 → 出单, with where the application stands."""
    at, state = {
        ApplicationStatus.pending_payment.value: ("pay", "current"),
        ApplicationStatus.abandoned.value: ("pay", "failed"),
        ApplicationStatus.referred.value: ("underwrite", "current"),
        ApplicationStatus.declined.value: ("underwrite", "failed"),
        ApplicationStatus.issued.value: ("issue", "done"),
    }.get(status, ("apply", "current"))
    if status == ApplicationStatus.pending_payment.value and payment_status == "succeeded":
        at = "underwrite"  # paid; the decision is on its way
    index = PROGRESS.index(at)
    steps = [
        {
            "code": code,
            "state": "done" if i < index else state if i == index else "todo",
            "current": i == index,
        }
        for i, code in enumerate(PROGRESS)
    ]
    return Progress(steps, at)


def reason_code(status: str, reason: str | None) -> str:
    """A decline or referral reason as a key of the plain-words texts."""
    known = DECLINE_REASONS if status == ApplicationStatus.declined.value else REFER_REASONS
    return reason if reason in known else "other"


def local_date(moment: datetime | None, lang: str) -> str:
    return i18n.format_date(moment, lang) if moment else ""
