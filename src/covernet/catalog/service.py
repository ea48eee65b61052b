"""Loading the catalog into the database, and reading it back fast.

Loading stores every changed product as a new immutable version and bumps one
revision counter.  Readers hold an in-process snapshot and re-check that counter at
most every ``catalog_cache_seconds``, so every app process sees a load within
seconds, and a quote costs no catalog query in the normal case.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from covernet.audit import service as audit
from covernet.catalog.disclosures import Disclosure, disclosures_for
from covernet.catalog.loader import product_digest
from covernet.catalog.models import CatalogState, InsurerRow, ProductRow, ProductVersion
from covernet.catalog.spec import Catalog, Insurer, Product
from covernet.core import clock
from covernet.core.config import get_settings
from covernet.core.db import is_postgres, unit_of_work
from covernet.core.errors import NotFound


@dataclass
class LoadReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    revision: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.unlisted)


def _lock_state(db: Session) -> CatalogState:
    stmt = select(CatalogState).where(CatalogState.id == 1)
    if is_postgres(db):
        stmt = stmt.with_for_update()
    state = db.scalar(stmt)
    if state is None:
        state = CatalogState(id=1, revision=0)
        db.add(state)
        db.flush()
    return state


def load_into_db(db: Session, catalog: Catalog) -> LoadReport:
    """Store ``catalog``: new products, new versions of changed ones; unlist the missing."""
    state = _lock_state(db)
    report = LoadReport()
    insurers_changed = False
    for insurer in catalog.insurers:
        data = insurer.model_dump(mode="json")
        insurer_row = db.get(InsurerRow, insurer.code)
        if insurer_row is None:
            db.add(
                InsurerRow(code=insurer.code, name_zh=insurer.name.zh, demo=insurer.demo, spec=data)
            )
            insurers_changed = True
        elif insurer_row.spec != data:
            insurer_row.spec = data
            insurer_row.name_zh, insurer_row.demo = insurer.name.zh, insurer.demo
            insurer_row.updated_at = clock.now()
            insurers_changed = True
    db.flush()
    seen = set()
    for product in catalog.products:
        seen.add(product.code)
        digest = product_digest(product)
        row = db.get(ProductRow, product.code)
        if row is None:
            db.add(
                ProductRow(
                    code=product.code,
                    insurer_code=product.insurer,
                    line=product.line.value,
                    kind=product.kind.value,
                    current_version=1,
                    listed=True,
                )
            )
            db.flush()
            _add_version(db, product, 1, digest)
            report.created.append(product.code)
            continue
        current = db.scalar(
            select(ProductVersion).where(
                ProductVersion.product_code == product.code,
                ProductVersion.version == row.current_version,
            )
        )
        if current is not None and current.digest == digest and row.listed:
            report.unchanged.append(product.code)
            continue
        if current is None or current.digest != digest:
            latest = (
                db.scalar(
                    select(func.max(ProductVersion.version)).where(
                        ProductVersion.product_code == product.code
                    )
                )
                or 0
            )
            _add_version(db, product, latest + 1, digest)
            row.current_version = latest + 1
        row.insurer_code, row.line, row.kind = product.insurer, product.line.value, product.kind
        row.listed = True
        row.updated_at = clock.now()
        report.updated.append(product.code)
    for gone in db.scalars(select(ProductRow).where(ProductRow.listed.is_(True))):
        if gone.code not in seen:
            # R20: a product leaving sale stays in the database for its policies' service.
            gone.listed = False
            gone.updated_at = clock.now()
            report.unlisted.append(gone.code)
    if report.changed or insurers_changed:
        state.revision += 1
        state.loaded_at = clock.now()
        audit.record(
            db,
            "catalog.load",
            subject_type="catalog",
            subject_id=str(state.revision),
            detail={
                "created": report.created,
                "updated": report.updated,
                "unlisted": report.unlisted,
            },
        )
    db.flush()
    report.revision = state.revision
    return report


def _add_version(db: Session, product: Product, version: int, digest: str) -> None:
    db.add(
        ProductVersion(
            product_code=product.code,
            version=version,
            digest=digest,
            spec=product.model_dump(mode="json"),
        )
    )


# Reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedProduct:
    version_id: int
    version: int
    product: Product
    insurer: Insurer
    disclosures: tuple[Disclosure, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    revision: int
    products: dict[str, ListedProduct]
    insurers: dict[str, Insurer]

    def get(self, code: str) -> ListedProduct:
        found = self.products.get(code)
        if found is None:
            raise NotFound(
                f"no product '{code}'", code="unknown_product", detail={"field": "product_code"}
            )
        return found


_lock = threading.Lock()
_snapshots: dict[str, tuple[float, Snapshot]] = {}
_versions: dict[tuple[str, int], tuple[Product, int]] = {}


def _url_key(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _db_key(db: Session) -> str:
    return db.get_bind().engine.url.render_as_string(hide_password=True)


def _revision(db: Session) -> int:
    return db.scalar(select(CatalogState.revision).where(CatalogState.id == 1)) or 0


def _build(db: Session, revision: int) -> Snapshot:
    insurers = {
        row.code: Insurer.model_validate(row.spec) for row in db.scalars(select(InsurerRow))
    }
    rows = db.execute(
        select(ProductRow, ProductVersion)
        .join(
            ProductVersion,
            (ProductVersion.product_code == ProductRow.code)
            & (ProductVersion.version == ProductRow.current_version),
        )
        .where(ProductRow.listed.is_(True))
        .order_by(ProductRow.code)
    ).all()
    products = {}
    for row, version in rows:
        product = Product.model_validate(version.spec)
        insurer = insurers[product.insurer]
        products[row.code] = ListedProduct(
            version.id, version.version, product, insurer, tuple(disclosures_for(product, insurer))
        )
    return Snapshot(revision, products, insurers)


def _fresh(key: str) -> Snapshot | None:
    cached = _snapshots.get(key)
    if cached is not None and time.monotonic() - cached[0] < get_settings().catalog_cache_seconds:
        return cached[1]
    return None


def snapshot(db: Session) -> Snapshot:
    """The listed catalog, cached per process and refreshed when the revision moves."""
    key = _db_key(db)
    fresh = _fresh(key)
    if fresh is not None:
        return fresh
    cached = _snapshots.get(key)
    now = time.monotonic()
    revision = _revision(db)
    if cached is not None and cached[1].revision == revision:
        with _lock:
            _snapshots[key] = (now, cached[1])
        return cached[1]
    built = _build(db, revision)
    with _lock:
        _snapshots[key] = (now, built)
    return built


async def current_snapshot() -> Snapshot:
    """:func:`snapshot` for async routes: no thread hop while the cache is fresh."""
    url = get_settings().database_url
    fresh = _fresh(_url_key(url))
    if fresh is not None:
        return fresh
    return await run_in_threadpool(_snapshot_in_own_session, url)


def _snapshot_in_own_session(url: str) -> Snapshot:
    with unit_of_work(url) as db:
        return snapshot(db)


def forget_snapshots() -> None:
    with _lock:
        _snapshots.clear()
        _versions.clear()


def product_at_version(db: Session, version_id: int) -> tuple[Product, int]:
    """A product as declared in one stored version, and its version number (cached)."""
    key = (_db_key(db), version_id)
    found = _versions.get(key)
    if found is None:
        row = db.get(ProductVersion, version_id)
        if row is None:
            raise NotFound("no such product version")
        found = (Product.model_validate(row.spec), row.version)
        with _lock:
            _versions[key] = found
    return found


def versions_of(db: Session, code: str) -> list[dict[str, Any]]:
    rows = db.scalars(
        select(ProductVersion)
        .where(ProductVersion.product_code == code)
        .order_by(ProductVersion.version)
    )
    return [{"version": r.version, "digest": r.digest, "loaded_at": r.loaded_at} for r in rows]
