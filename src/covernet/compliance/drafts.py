"""Checking a draft against the marketing rules: the one place that gathers the rule set,
the catalog and the advisor's identity for :func:`covernet.compliance.checker.check`."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from sqlalchemy.orm import Session

from covernet.catalog import service as catalog
from covernet.compliance import checker, licenses
from covernet.core.config import get_settings
from covernet.identity import service as identity


@lru_cache(maxsize=4)
def _rules(path: str, mtime: float) -> checker.RuleSet:
    return checker.load_rules(path)


def marketing_rules() -> checker.RuleSet:
    """The rule set from the catalog folder (reloaded when the file changes)."""
    path = get_settings().catalog_dir / "rules" / "marketing.yaml"
    return _rules(str(path), path.stat().st_mtime)


def advisor_identity(db: Session, advisor_id: str) -> checker.AdvisorIdentity | None:
    """Name, institution and 执业证编号 of a registered advisor (R2), if there is one."""
    held = licenses.license_of(db, advisor_id)
    user = identity.get_user(db, advisor_id)
    if held is None or user is None:
        return None
    return checker.AdvisorIdentity(user.name, held.institution, held.license_no)


def check_draft(
    db: Session,
    text: str,
    *,
    kind: str,
    product_codes: Sequence[str],
    advisor: checker.AdvisorIdentity | None,
) -> checker.CheckResult:
    """Check ``text`` promoting the listed products (unknown codes: 404 unknown_product)."""
    snap = catalog.snapshot(db)
    return checker.check(
        text,
        kind=kind,
        products=[snap.get(code).product for code in product_codes],
        advisor=advisor,
        rules=marketing_rules(),
        catalog_names=[p.product.name.zh for p in snap.products.values()],
    )
