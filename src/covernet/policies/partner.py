"""Embedded micro-policies issued by partners in batches (R11, R16).

A partner (an API key of role ``partner`` whose name is a partner code of
``catalog/partners.yaml``) sends up to :data:`MAX_ITEMS` items at once: return-shipping
cover for orders, flight-delay cover for bookings.  Each item is checked on its own and
answered on its own, in input order: ``issued`` (with the policy number and the premium
computed here from the catalog, never taken from the partner) or ``rejected`` with a
stable code and a message.  A bad item never blocks the good ones.

Issuing is idempotent per ``(partner, external_ref)``: the good items go into the
database in one bulk ``INSERT … ON CONFLICT DO NOTHING … RETURNING`` (both dialects);
the ones that were already there are looked up and answered with their first policy
number (``duplicate: true``).  Concurrent batches naming the same references issue each
once: PostgreSQL makes the second insert wait for the first on the unique index and then
skip; SQLite writers queue on the database's write lock.  Rows are inserted in reference
order, so two such batches never deadlock.  Policy numbers and verification codes are
random; a row that collides on either (and so is skipped by ``DO NOTHING`` without being
an existing reference) is given new ones and inserted again.

The premium is prepaid by the partner to the insurer's premium account (R11): nothing
is booked to any partner account.  Each batch that issues anything appends one audit
entry with its counts and premium totals per insurer and product (no personal data):
what the insurer settles with the partner.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog import service as catalog
from covernet.catalog.pricing import Insured, Price, price
from covernet.catalog.spec import Gender, Product
from covernet.core import clock
from covernet.core.batch import sqlite_write_lock
from covernet.core.config import get_settings
from covernet.core.db import unit_of_work
from covernet.core.errors import CovernetError, Forbidden, ValidationFailed
from covernet.core.ids import new_id
from covernet.identity.access import Principal
from covernet.integration import outbox
from covernet.integration.models import OutboxTopic
from covernet.policies.issuance import ALPHABET
from covernet.policies.models import Policy, PolicyStatus
from covernet.policies.partner_rules import Partners, PartnerSpec, embedding_problems, partners_in

POLICY_TABLE: Table = Policy.__table__  # type: ignore[assignment]
MAX_ITEMS = 1_000
MAX_BODY_BYTES = 2 * 1024 * 1024
# Any province: pricing only checks a region against the product's sale regions, so for
# a product sold everywhere an item need not name one (premiums never depend on it).
ANY_REGION = "110000"
COLLISION_ROUNDS = 5


class InsuredIn(BaseModel):
    """What the product needs to know about the insured; never an ID number or a name."""

    model_config = ConfigDict(extra="forbid")

    birth_date: date | None = None
    gender: Literal["M", "F"] | None = None
    region: str | None = Field(default=None, max_length=6, description="province code")
    occupation_class: int = Field(default=1, ge=1, le=6)


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_ref: str = Field(
        min_length=1, max_length=100, description="the partner's order or booking id"
    )
    product_code: str = Field(min_length=1, max_length=64)
    plan_code: str = Field(min_length=1, max_length=64)
    holder_ref: str = Field(min_length=1, max_length=100, description="the partner's customer id")
    order_amount_fen: int | None = Field(default=None, ge=0, description="per-order products")
    term: str | None = Field(default=None, max_length=64)
    effective_date: date | None = Field(
        default=None, description="start of cover (default: as soon as the product allows)"
    )
    insured: InsuredIn | None = None


class BatchIn(BaseModel):
    """The body (for the OpenAPI document; items are validated one by one)."""

    items: list[ItemIn] = Field(min_length=1, max_length=MAX_ITEMS)


@dataclass(slots=True)
class _Pending:
    index: int
    row: dict[str, Any]


@dataclass
class Prepared:
    """A batch checked and priced, not yet stored."""

    partner: PartnerSpec
    results: list[dict[str, Any] | None]
    pending: list[_Pending]
    # Items rejected before pricing whose reference may already name a policy.
    rejected_refs: dict[str, int] = field(default_factory=dict)


@dataclass
class BatchResult:
    batch_id: str
    partner_code: str
    results: list[dict[str, Any]]
    issued: int = 0
    duplicates: int = 0
    rejected: int = 0
    premium_fen: int = 0

    def body(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "partner_code": self.partner_code,
            "items": len(self.results),
            "issued": self.issued,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "premium_fen": self.premium_fen,
            "results": self.results,
        }


# Parsing ---------------------------------------------------------------------------


def _malformed(message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", "items"), "msg": message, "type": "value"}])


def parse_items(raw: bytes) -> list[Any]:
    """The items of a batch body, not yet validated; the batch itself must be sound."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _malformed("the body is not JSON") from None
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise _malformed('expected {"items": [...]}')
    if len(items) > MAX_ITEMS:
        raise ValidationFailed(
            f"a batch holds at most {MAX_ITEMS:,} items; this one has {len(items):,}",
            code="too_many_items",
            detail={"field": "items", "limit": MAX_ITEMS, "given": len(items)},
        )
    if not items:
        raise ValidationFailed("the batch has no items", code="no_items", detail={"field": "items"})
    return items


def _item_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "item"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


# Checking and pricing --------------------------------------------------------------


def _rejected(ref: str | None, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"external_ref": ref, "status": "rejected", "error": code, "message": message, **extra}


_TO_ALPHABET = bytes(ord(ALPHABET[i % len(ALPHABET)]) for i in range(256))


def random_codes(count: int, length: int) -> list[str]:
    """``count`` random codes of Crockford base 32 (each byte gives 5 unbiased bits)."""
    text = os.urandom(count * length).translate(_TO_ALPHABET).decode("ascii")
    return [text[i : i + length] for i in range(0, count * length, length)]


def new_ids(count: int) -> list[str]:
    """``count`` UUIDv7 strings as :func:`covernet.core.ids.new_id` makes them, at once."""
    head = ((time.time_ns() // 1_000_000) & ((1 << 48) - 1)) << 80 | 0x7 << 76 | 0b10 << 62
    noise = os.urandom(10 * count)
    out = []
    for k in range(0, 10 * count, 10):
        rand = int.from_bytes(noise[k : k + 10], "big")
        h = f"{head | ((rand >> 62) & 0xFFF) << 64 | (rand & ((1 << 62) - 1)):032x}"
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def _numbers(rows: list[dict[str, Any]], on: date) -> None:
    """Give ``rows`` new policy numbers (``CN20261201-7KQ2M9XW``) and verification codes."""
    numbers, codes = random_codes(len(rows), 8), random_codes(len(rows), 12)
    prefix = f"CN{on:%Y%m%d}-"
    for row, number, code in zip(rows, numbers, codes, strict=True):
        row["policy_no"] = prefix + number
        row["verification_code"] = code


class _Pricer:
    """Prices items for one batch; identical inputs (common in a batch) are priced once."""

    def __init__(self) -> None:
        self._seen: dict[tuple[Any, ...], Price | CovernetError] = {}

    def __call__(
        self, version_id: int, product: Product, item: ItemIn, insured: Insured, on: date
    ) -> Price:
        key = (version_id, item.plan_code, item.term, item.order_amount_fen, insured, on)
        found = self._seen.get(key)
        if found is None:
            try:
                found = price(
                    product,
                    plan_code=item.plan_code,
                    insured=insured,
                    quote_date=on,
                    term_code=item.term,
                    order_amount_fen=item.order_amount_fen,
                )
            except CovernetError as exc:
                found = exc
            self._seen[key] = found
        if isinstance(found, CovernetError):
            raise found
        return found


def _insured(item: ItemIn, product: Product) -> Insured:
    given = item.insured or InsuredIn()
    region = (given.region or "").strip()
    if not region:
        if product.sale.regions != "all":
            raise ValidationFailed(
                f"product {product.code} is sold in some regions only: give insured.region",
                code="region_required",
            )
        region = ANY_REGION
    gender = Gender(given.gender) if given.gender else None
    return Insured(given.birth_date, gender, region, given.occupation_class)


def _start(item: ItemIn, product: Product, today: date, max_advance_days: int) -> date:
    """The quote date to price on: cover starts ``effective_after_days`` after it."""
    earliest = today + timedelta(days=product.effective_after_days)
    start = item.effective_date or earliest
    if start < earliest:
        raise ValidationFailed(
            f"cover can start on {earliest.isoformat()} at the earliest",
            code="effective_date_too_early",
        )
    if start > today + timedelta(days=max_advance_days):
        raise ValidationFailed(
            f"cover can start at most {max_advance_days} days ahead",
            code="effective_date_too_late",
        )
    return start - timedelta(days=product.effective_after_days)


def prepare(
    snap: catalog.Snapshot, rules: Partners, partner: PartnerSpec, items: list[Any]
) -> Prepared:
    """Check and price every item; build the rows of the good ones (no database)."""
    today, now = clock.today(), clock.now()
    allowed = set(partner.products)
    embeddable: dict[int, list[str]] = {}
    results: list[dict[str, Any] | None] = [None] * len(items)
    pending: list[_Pending] = []
    rejected_refs: dict[str, int] = {}
    seen: set[str] = set()
    pricer = _Pricer()
    for index, obj in enumerate(items):
        ref = obj.get("external_ref") if isinstance(obj, dict) else None
        ref = ref if isinstance(ref, str) else None
        if ref is not None:
            if ref in seen:
                results[index] = _rejected(
                    ref, "duplicate_in_batch", "an earlier item of this batch has this reference"
                )
                continue
            seen.add(ref)
        try:
            item = ItemIn.model_validate(obj)
        except ValidationError as exc:
            results[index] = _rejected(ref, "invalid_item", _item_error(exc))
            continue
        try:
            if item.product_code not in allowed:
                raise Forbidden(
                    f"partner {partner.code} may not issue {item.product_code}",
                    code="product_not_allowed",
                )
            listed = snap.get(item.product_code)
            product = listed.product
            problems = embeddable.get(listed.version_id)
            if problems is None:
                problems = embeddable[listed.version_id] = embedding_problems(product, rules.micro)
            if problems:
                raise Forbidden(
                    f"{product.code} cannot be embedded: {'; '.join(problems)}",
                    code="product_not_embeddable",
                )
            on = _start(item, product, today, rules.micro.max_advance_days)
            priced = pricer(listed.version_id, product, item, _insured(item, product), on)
        except CovernetError as exc:
            results[index] = _rejected(ref, exc.code, exc.message)
            rejected_refs[item.external_ref] = index
            continue
        pending.append(
            _Pending(index, _row(partner.code, item, listed.version_id, product, priced, now))
        )
    for p, row_id in zip(pending, new_ids(len(pending)), strict=True):
        p.row["id"] = row_id
    return Prepared(partner, results, pending, rejected_refs)


def _row(
    partner_code: str,
    item: ItemIn,
    version_id: int,
    product: Product,
    priced: Price,
    now: datetime,
) -> dict[str, Any]:
    return {
        "partner_code": partner_code,
        "external_ref": item.external_ref,
        "holder_ref": item.holder_ref,
        "product_code": product.code,
        "product_version_id": version_id,
        "insurer_code": product.insurer,
        "line": product.line.value,
        "plan_code": priced.plan_code,
        "term_code": priced.term_code,
        "payment_code": priced.payment_code,
        "premium_fen": priced.premium_fen,
        "sum_insured_fen": priced.sum_insured_fen,
        "effective_date": priced.effective_date,
        "end_date": priced.end_date,
        "waiting_period_end": priced.waiting_period_ends,
        "status": PolicyStatus.in_force.value,
        "gifted": False,
        "issued_at": now,
        "updated_at": now,
    }


# Storing ---------------------------------------------------------------------------


# The columns a partner's policy sets; the others stay NULL.
COLUMNS = (
    "id",
    "policy_no",
    "verification_code",
    "partner_code",
    "external_ref",
    "holder_ref",
    "product_code",
    "product_version_id",
    "insurer_code",
    "line",
    "plan_code",
    "term_code",
    "payment_code",
    "premium_fen",
    "sum_insured_fen",
    "effective_date",
    "end_date",
    "waiting_period_end",
    "status",
    "gifted",
    "issued_at",
    "updated_at",
)
_NAMES = ", ".join(COLUMNS)
# No conflict target: a row that collides on a policy number or a verification code is
# skipped too (and given new ones), rather than failing the whole batch.
_TAIL = " ON CONFLICT DO NOTHING RETURNING external_ref"


@lru_cache(maxsize=4)
def _postgres_insert() -> str:
    """One statement for any number of rows: a column array per column, unnested."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    casts = ", ".join(
        f"%b::{POLICY_TABLE.c[name].type.compile(dialect=dialect)}[]" for name in COLUMNS
    )
    table = POLICY_TABLE.name  # our own names only, no input
    return f"INSERT INTO {table} ({_NAMES}) SELECT * FROM unnest({casts}){_TAIL}"  # noqa: S608


@lru_cache(maxsize=8)
def _sqlite_insert(count: int) -> str:
    row = "(" + ", ".join("?" * len(COLUMNS)) + ")"
    values = ", ".join([row] * count)
    return f"INSERT INTO {POLICY_TABLE.name} ({_NAMES}) VALUES {values}{_TAIL}"  # noqa: S608


@lru_cache(maxsize=1)
def _sqlite_processors() -> tuple[Any, ...]:
    """SQLAlchemy's own bind processors: values are stored as the ORM stores them."""
    dialect = sqlite.dialect()
    return tuple(
        POLICY_TABLE.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in COLUMNS
    )


# SQLite's limit of bound values in one statement is 32,766.
SQLITE_ROWS_PER_STATEMENT = 32_766 // len(COLUMNS)


def _insert(db: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert ``rows`` in bulk on the session's connection; the references inserted.

    Plain DB-API: building a 1,000-row statement through SQLAlchemy (and psycopg's
    query conversion) costs far more than the database's work on it."""
    raw: Any = db.connection().connection.driver_connection
    cursor = raw.cursor()
    try:
        if db.get_bind().dialect.name == "postgresql":
            arrays = [[row[name] for row in rows] for name in COLUMNS]
            cursor.execute(_postgres_insert(), arrays)
            return {ref for (ref,) in cursor.fetchall()}
        processors = _sqlite_processors()
        inserted: set[str] = set()
        for start in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
            chunk = rows[start : start + SQLITE_ROWS_PER_STATEMENT]
            params = [
                value if proc is None else proc(value)
                for row in chunk
                for name, proc in zip(COLUMNS, processors, strict=True)
                for value in (row[name],)
            ]
            cursor.execute(_sqlite_insert(len(chunk)), params)
            inserted.update(ref for (ref,) in cursor.fetchall())
        return inserted
    finally:
        cursor.close()


def _existing(db: Session, partner_code: str, refs: list[str]) -> dict[str, Any]:
    if not refs:
        return {}
    c = POLICY_TABLE.c
    rows = db.execute(
        select(c.external_ref, c.policy_no, c.premium_fen, c.product_code, c.plan_code)
        .add_columns(c.holder_ref)
        .where(c.partner_code == partner_code, c.external_ref.in_(refs))
    )
    return {row.external_ref: row for row in rows}


def store(db: Session, prepared: Prepared, who: Principal) -> BatchResult:
    """Insert the good rows, answer the ones already there, audit the batch."""
    partner = prepared.partner.code
    results = prepared.results
    by_ref = {p.row["external_ref"]: p for p in prepared.pending}
    waiting = sorted(by_ref.values(), key=lambda p: p.row["external_ref"])  # no deadlocks
    issued: list[_Pending] = []
    existing: dict[str, Any] = {}
    today = clock.today()
    for _ in range(COLLISION_ROUNDS):
        if not waiting:
            break
        rows = [p.row for p in waiting]
        _numbers(rows, today)
        inserted = _insert(db, rows)
        issued += [p for p in waiting if p.row["external_ref"] in inserted]
        skipped = [p for p in waiting if p.row["external_ref"] not in inserted]
        existing.update(_existing(db, partner, [p.row["external_ref"] for p in skipped]))
        waiting = [p for p in skipped if p.row["external_ref"] not in existing]
    for p in waiting:  # collided COLLISION_ROUNDS times in a row: practically never
        results[p.index] = _rejected(
            p.row["external_ref"], "try_again", "no free policy number was found; send it again"
        )
    # Items rejected this time whose reference was issued before keep their first answer.
    earlier = _existing(db, partner, [r for r in prepared.rejected_refs if r not in existing])
    for ref, row in earlier.items():
        results[prepared.rejected_refs[ref]] = _duplicate(row)
    for p in issued:
        results[p.index] = {
            "external_ref": p.row["external_ref"],
            "status": "issued",
            "policy_no": p.row["policy_no"],
            "premium_fen": p.row["premium_fen"],
        }
    for ref, row in existing.items():
        p = by_ref[ref]
        same = (row.product_code, row.plan_code, row.holder_ref) == (
            p.row["product_code"],
            p.row["plan_code"],
            p.row["holder_ref"],
        )
        results[p.index] = (
            _duplicate(row)
            if same
            else _rejected(
                ref,
                "external_ref_conflict",
                "this reference already names a policy for another product, plan or holder",
                policy_no=row.policy_no,
            )
        )
    final = [r for r in results if r is not None]
    assert len(final) == len(results)
    result = BatchResult(new_id(), partner, final)
    for r in final:
        if r["status"] == "rejected":
            result.rejected += 1
        elif r.get("duplicate"):
            result.duplicates += 1
    result.issued = len(issued)
    result.premium_fen = sum(p.row["premium_fen"] for p in issued)
    if issued:
        _audit(db, result, issued, final, who)
        _sync(db, result, issued)
    return result


def _duplicate(row: Any) -> dict[str, Any]:
    return {
        "external_ref": row.external_ref,
        "status": "issued",
        "policy_no": row.policy_no,
        "premium_fen": row.premium_fen,
        "duplicate": True,
    }


def _audit(
    db: Session,
    result: BatchResult,
    issued: list[_Pending],
    final: list[dict[str, Any]],
    who: Principal,
) -> None:
    """One entry per batch: counts and premium totals for settlement, no personal data."""
    insurers: dict[str, dict[str, int]] = {}
    products: Counter[str] = Counter()
    for p in issued:
        row = p.row
        totals = insurers.setdefault(row["insurer_code"], {"policies": 0, "premium_fen": 0})
        totals["policies"] += 1
        totals["premium_fen"] += row["premium_fen"]
        products[row["product_code"]] += 1
    rejections = Counter(r["error"] for r in final if r["status"] == "rejected")
    audit.record(
        db,
        "policy.partner_batch",
        actor=audit.Actor("api_key", who.api_key_id, "partner"),
        subject_type="partner_batch",
        subject_id=result.batch_id,
        detail={
            "partner": result.partner_code,
            "items": len(final),
            "issued": result.issued,
            "duplicates": result.duplicates,
            "rejected": result.rejected,
            "rejections": dict(rejections),
            "premium_fen": result.premium_fen,
            "prepaid": True,
            "insurers": insurers,
            "products": dict(products),
        },
    )


def _day(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _sync(db: Session, result: BatchResult, issued: list[_Pending]) -> None:
    """R19: the insurers' core systems hear of the new policies, one outbox event per
    insurer per batch (the policy facts; the holder only as the partner's reference)."""
    by_insurer: dict[str, list[dict[str, Any]]] = {}
    for p in issued:
        row = p.row
        by_insurer.setdefault(row["insurer_code"], []).append(
            {
                "policy_no": row["policy_no"],
                "external_ref": row["external_ref"],
                "holder_ref": row["holder_ref"],
                "product_code": row["product_code"],
                "plan_code": row["plan_code"],
                "premium_fen": row["premium_fen"],
                "sum_insured_fen": row["sum_insured_fen"],
                "effective_date": _day(row["effective_date"]),
                "end_date": _day(row["end_date"]),
            }
        )
    for insurer_code, policies in by_insurer.items():
        outbox.enqueue(
            db,
            OutboxTopic.partner_batch_issued.value,
            insurer_code=insurer_code,
            subject_id=result.batch_id,
            payload={
                "partner": result.partner_code,
                "batch_id": result.batch_id,
                "policies": policies,
            },
        )


def partner_of(who: Principal, rules: Partners) -> PartnerSpec:
    found = rules.partner(who.name)
    if found is None:
        raise Forbidden(
            "this API key names no partner of catalog/partners.yaml",
            code="unknown_partner",
        )
    return found


def issue_batch_now(raw: bytes, who: Principal) -> BatchResult:
    """Parse, check and price a batch, then store it in a unit of work of its own.

    Called off the event loop.  The checking and pricing happen before the database's
    write lock is taken (on SQLite the file lock all writing processes queue on)."""
    settings = get_settings()
    rules = partners_in(settings.catalog_dir)
    partner = partner_of(who, rules)
    items = parse_items(raw)
    with unit_of_work(settings.database_url) as db:
        snap = catalog.snapshot(db)
    prepared = prepare(snap, rules, partner, items)
    with sqlite_write_lock(settings.database_url), unit_of_work(settings.database_url) as db:
        return store(db, prepared, who)


def issue_batch(db: Session, items: list[Any], who: Principal) -> BatchResult:
    """:func:`issue_batch_now` inside the caller's unit of work (CLI, tests)."""
    rules = partners_in(get_settings().catalog_dir)
    prepared = prepare(catalog.snapshot(db), rules, partner_of(who, rules), items)
    return store(db, prepared, who)
