"""Which partners may issue which embedded micro-policies: ``catalog/partners.yaml``.

Pure: reading and checking the declaration, no database.  A partner is named by its
code, which is also the name of its API key (``covernet key create CODE --role
partner``), so no key needs a column of its own.  A partner may issue a product only
when it lists it *and* the product, in the version on sale, is embeddable by the file's
``micro`` rules (:func:`embedding_problems`).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from covernet.catalog.spec import Code, Frequency, Kind, Line, Product
from covernet.core.errors import ValidationFailed
from covernet.core.i18n_text import I18nText

PARTNERS_FILE = "partners.yaml"
PREPAID_FREQUENCIES = frozenset({Frequency.single, Frequency.per_order})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MicroRules(_Model):
    lines: list[Line] = Field(min_length=1)
    max_premium_fen: int = Field(ge=1)
    max_sum_insured_fen: int = Field(ge=1)
    max_advance_days: int = Field(default=365, ge=0, le=3660)


class PartnerSpec(_Model):
    code: Code
    name: I18nText
    products: list[Code] = Field(min_length=1)


class Partners(_Model):
    version: int = Field(ge=1)
    micro: MicroRules
    partners: list[PartnerSpec] = Field(default_factory=list)

    def partner(self, code: str | None) -> PartnerSpec | None:
        return next((p for p in self.partners if p.code == code), None)


NO_PARTNERS = Partners(
    version=1,
    micro=MicroRules(lines=[Line.property], max_premium_fen=1, max_sum_insured_fen=1),
)


def load_partners(path: Path | str) -> Partners:
    """Read the declaration; a missing file declares no partner at all."""
    path = Path(path)
    if not path.is_file():
        return NO_PARTNERS
    try:
        found = Partners.model_validate(yaml.safe_load(path.read_text("utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ValidationFailed(f"{path}: {exc}", code="bad_partner_rules") from exc
    codes = [p.code for p in found.partners]
    if len(codes) != len(set(codes)):
        raise ValidationFailed(f"{path}: partner codes repeat", code="bad_partner_rules")
    return found


def embedding_problems(product: Product, micro: MicroRules) -> list[str]:
    """Why ``product`` cannot be embedded in a partner's checkout (empty: it can)."""
    out = []
    if product.kind is not Kind.protection:
        out.append("only protection products are embedded")
    if product.line not in micro.lines and not any(plan.per_order for plan in product.plans):
        lines = ", ".join(line.value for line in micro.lines)
        out.append(f"line {product.line.value} is not embedded (lines: {lines}, or per order)")
    if any(term.over_one_year for term in product.terms_options):
        out.append("a term is longer than one year")
    if any(p.frequency not in PREPAID_FREQUENCIES for p in product.payment_options):
        out.append("premiums are paid more than once (embedded cover is prepaid)")
    if product.health_questions:
        out.append("it asks health questions")
    if product.cooling_off_days:
        out.append("it has a 犹豫期, which needs a holder who can cancel")
    if any(row.premium_fen > micro.max_premium_fen for p in product.plans for row in p.premiums):
        out.append(f"a premium exceeds {micro.max_premium_fen} fen")
    if any(plan.sum_insured_fen > micro.max_sum_insured_fen for plan in product.plans):
        out.append(f"a sum insured exceeds {micro.max_sum_insured_fen} fen")
    return out


_cache: dict[tuple[str, float], Partners] = {}


def partners_in(catalog_dir: Path) -> Partners:
    """The declaration under ``catalog_dir``, re-read when the file changes."""
    path = catalog_dir / PARTNERS_FILE
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return NO_PARTNERS
    key = (str(path), mtime)
    found = _cache.get(key)
    if found is None:
        found = load_partners(path)
        _cache.clear()
        _cache[key] = found
    return found
