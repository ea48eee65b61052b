"""JSON routes for the catalog."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from covernet.catalog import service
from covernet.catalog.disclosures import disclosures_for
from covernet.catalog.pricing import is_on_sale, price_from
from covernet.catalog.spec import LINE_LABELS, Line
from covernet.core import clock
from covernet.identity.access import Db, Insurer, Public

router = APIRouter(prefix="/api/v1", tags=["catalog"])


def product_summary(listed: service.ListedProduct) -> dict[str, Any]:
    p = listed.product
    premium, frequency = price_from(p)
    return {
        "code": p.code,
        "version": listed.version,
        "name": p.name.model_dump(),
        "tagline": p.tagline.model_dump(),
        "line": p.line.value,
        "line_label": LINE_LABELS[p.line].model_dump(),
        "kind": p.kind.value,
        "insurer": {
            "code": listed.insurer.code,
            "name": listed.insurer.name.model_dump(),
            "demo": listed.insurer.demo,
        },
        "highlights": [h.model_dump() for h in p.highlights],
        "price_from_fen": premium,
        "price_from_frequency": frequency.value,
        "on_sale": is_on_sale(p, clock.today()),
        "stop_date": p.sale.stop_date,
        "online_exclusive": p.sale.online_exclusive,
    }


def product_detail(listed: service.ListedProduct) -> dict[str, Any]:
    body = product_summary(listed)
    body["spec"] = listed.product.model_dump(mode="json")
    # The premium account is for payments (R11), not for the public.
    body["insurer"] = listed.insurer.model_dump(mode="json", exclude={"premium_account"})
    body["disclosures"] = [
        {"code": d.code, "text": d.text.model_dump(), "emphasis": d.emphasis, "rule": d.rule}
        for d in disclosures_for(listed.product, listed.insurer)
    ]
    return body


@router.get("/products")
def list_products(
    db: Db,
    _: Public,
    line: Annotated[Line | None, Query(description="only this line of business")] = None,
) -> dict[str, Any]:
    snap = service.snapshot(db)
    items = [
        product_summary(p) for p in snap.products.values() if line is None or p.product.line == line
    ]
    return {"items": items, "catalog_revision": snap.revision}


@router.get("/products/{code}")
def get_product(code: str, db: Db, _: Public) -> dict[str, Any]:
    return product_detail(service.snapshot(db).get(code))


@router.get("/insurer/products")
def insurer_products(db: Db, who: Insurer) -> dict[str, Any]:
    """An insurer's machine client sees its own products (with every stored version)."""
    snap = service.snapshot(db)
    items = []
    for listed in snap.products.values():
        if listed.product.insurer == who.insurer_code:
            item = product_summary(listed)
            item["versions"] = service.versions_of(db, listed.product.code)
            items.append(item)
    return {"items": items}
