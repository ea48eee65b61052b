"""Quotes: price a plan for an insured, keep the offer for a short while."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Table, insert, or_, update
from sqlalchemy.orm import Session

from covernet.catalog import service as catalog
from covernet.catalog.disclosures import Disclosure, disclosures_for
from covernet.catalog.pricing import Insured, price
from covernet.catalog.spec import Gender, Product
from covernet.core import clock
from covernet.core.batch import committer
from covernet.core.cn_identity import parse_id_number
from covernet.core.config import get_settings
from covernet.core.crypto import get_blind_index, get_cipher
from covernet.core.errors import NotFound, ValidationFailed
from covernet.core.ids import new_id
from covernet.core.masking import mask_id_number
from covernet.core.money import CURRENCY
from covernet.core.rotation import rotate_column
from covernet.identity.access import Principal
from covernet.identity.models import Role
from covernet.policies.models import Quote

QUOTE_TABLE: Table = Quote.__table__  # type: ignore[assignment]
ID_CONTEXT = "quote.insured_id"
# Staff who may read a customer's quote (advice, review); other staff roles may not.
QUOTE_READERS = frozenset({Role.advisor, Role.compliance, Role.admin})
ID_INDEX_CONTEXT = "person.id_number"


class InsuredIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_number: str | None = Field(
        default=None, description="居民身份证号; gives birth date and sex"
    )
    birth_date: date | None = None
    gender: Literal["M", "F"] | None = None
    region: str = Field(description="province code (GB/T 2260), e.g. 310000 for Shanghai")
    occupation_class: int = Field(default=1, ge=1, le=6)


class QuoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_code: str = Field(min_length=1, max_length=64)
    plan_code: str = Field(min_length=1, max_length=64)
    insured: InsuredIn
    term: str | None = Field(default=None, max_length=64)
    payment: str | None = Field(default=None, max_length=64)
    order_amount_fen: int | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _flat_insured(cls, data: object) -> object:
        """Accept the insured's fields at the top level too."""
        if isinstance(data, dict) and "insured" not in data:
            keys = set(InsuredIn.model_fields)
            insured = {k: data[k] for k in keys if k in data}
            if insured:
                rest = {k: v for k, v in data.items() if k not in keys}
                return {**rest, "insured": insured}
        return data


@dataclass(slots=True)
class QuoteRecord:
    """One quote as stored (the columns of :class:`Quote`), without ORM bookkeeping:
    building an ORM instance costs more than pricing on this hot path."""

    id: str
    product_code: str
    product_version_id: int
    plan_code: str
    term_code: str
    payment_code: str
    frequency: str
    premium_fen: int
    sum_insured_fen: int
    currency: str
    order_amount_fen: int | None
    insured_birth_date: date | None
    insured_gender: str | None
    insured_age: int | None
    insured_id_enc: str | None
    insured_id_index: str | None
    region: str
    occupation_class: int
    effective_date: date
    end_date: date | None
    customer_id: str | None
    created_at: datetime
    valid_until: datetime

    def row(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in RECORD_FIELDS}

    @classmethod
    def of(cls, quote: Quote) -> QuoteRecord:
        return cls(**{name: getattr(quote, name) for name in RECORD_FIELDS})


RECORD_FIELDS = tuple(QuoteRecord.__slots__)


@dataclass(frozen=True)
class QuoteResult:
    quote: QuoteRecord
    product: Product
    version: int
    disclosures: list[Disclosure]
    id_number_masked: str | None


def _insured_facts(data: InsuredIn) -> tuple[Insured, str | None]:
    birth, gender = data.birth_date, Gender(data.gender) if data.gender else None
    id_number = None
    if data.id_number:
        info = parse_id_number(data.id_number, field="insured.id_number")
        id_number = info.number
        derived = Gender(info.sex)
        if (birth and birth != info.birth_date) or (gender and gender != derived):
            raise ValidationFailed(
                "the birth date or gender given does not match the ID number",
                code="id_number_mismatch",
                detail={"field": "insured.id_number"},
            )
        birth, gender = info.birth_date, derived
    region = data.region.strip()
    return Insured(birth, gender, region, data.occupation_class), id_number


def prepare_quote(
    snap: catalog.Snapshot, data: QuoteIn, principal: Principal, quote_date: date | None = None
) -> QuoteResult:
    """Price the request and build the quote row (not yet stored); raise what is wrong.

    ``quote_date`` (default today) moves the cover's start, e.g. for a renewal that starts
    the day after the current policy ends."""
    listed = snap.get(data.product_code)
    insured, id_number = _insured_facts(data.insured)
    priced = price(
        listed.product,
        plan_code=data.plan_code,
        insured=insured,
        quote_date=quote_date or clock.today(),
        term_code=data.term,
        payment_code=data.payment,
        order_amount_fen=data.order_amount_fen,
    )
    now = clock.now()
    quote = QuoteRecord(
        id=new_id(),
        product_code=priced.product_code,
        product_version_id=listed.version_id,
        plan_code=priced.plan_code,
        term_code=priced.term_code,
        payment_code=priced.payment_code,
        frequency=priced.frequency.value,
        premium_fen=priced.premium_fen,
        sum_insured_fen=priced.sum_insured_fen,
        currency=CURRENCY,
        order_amount_fen=data.order_amount_fen,
        insured_birth_date=insured.birth_date,
        insured_gender=insured.gender.value if insured.gender else None,
        insured_age=priced.age,
        insured_id_enc=get_cipher().encrypt(id_number, context=ID_CONTEXT) if id_number else None,
        insured_id_index=(
            get_blind_index().digest(id_number, context=ID_INDEX_CONTEXT) if id_number else None
        ),
        region=insured.region,
        occupation_class=insured.occupation_class,
        effective_date=priced.effective_date,
        end_date=priced.end_date,
        customer_id=principal.user_id if principal.is_customer else None,
        created_at=now,
        valid_until=now + timedelta(minutes=get_settings().quote_valid_minutes),
    )
    return QuoteResult(
        quote,
        listed.product,
        listed.version,
        list(listed.disclosures),
        mask_id_number(id_number) if id_number else None,
    )


def create_quote(
    db: Session, data: QuoteIn, principal: Principal, quote_date: date | None = None
) -> QuoteResult:
    """Price and store a quote inside the caller's unit of work."""
    result = prepare_quote(catalog.snapshot(db), data, principal, quote_date)
    db.execute(insert(Quote), [result.quote.row()])
    return result


async def create_quote_now(data: QuoteIn, principal: Principal) -> QuoteResult:
    """Price and store a quote from an async route: the row joins the process's group
    commit and this returns once it is committed (see ``core.batch``)."""
    result = prepare_quote(await catalog.current_snapshot(), data, principal)
    await committer(get_settings().database_url, QUOTE_TABLE).insert(result.quote.row())
    return result


def get_quote(db: Session, quote_id: str, principal: Principal) -> QuoteResult:
    """A quote made while signed in belongs to that customer: others get 404."""
    row = db.get(Quote, quote_id)
    if row is None or (
        row.customer_id is not None
        and row.customer_id != principal.user_id
        and principal.role not in QUOTE_READERS
    ):
        raise NotFound("no such quote", detail={"field": "quote_id"})
    quote = QuoteRecord.of(row)
    product, version = catalog.product_at_version(db, quote.product_version_id)
    insurer = catalog.snapshot(db).insurers[product.insurer]
    id_number = (
        get_cipher().decrypt(quote.insured_id_enc, context=ID_CONTEXT)
        if quote.insured_id_enc
        else None
    )
    return QuoteResult(
        quote,
        product,
        version,
        disclosures_for(product, insurer),
        mask_id_number(id_number) if id_number else None,
    )


def rotate_field_keys(db: Session) -> int:
    """Re-encrypt this domain's personal data under the active key."""
    return rotate_column(db, Quote.id, Quote.insured_id_enc, context=ID_CONTEXT)


def scrub_expired_quotes(db: Session) -> int:
    """Remove the insured's identity from quotes long expired (R30); prices, ages and
    regions stay for statistics.  Returns how many quotes were scrubbed."""
    cutoff = clock.now() - timedelta(days=get_settings().quote_personal_data_days)
    result = db.execute(
        update(Quote)
        .where(
            Quote.valid_until < cutoff,
            or_(Quote.insured_id_enc.is_not(None), Quote.insured_birth_date.is_not(None)),
        )
        .values(insured_id_enc=None, insured_id_index=None, insured_birth_date=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)
