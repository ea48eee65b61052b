"""What the catalog pages show, worked out from the product declarations.

Pure functions of the catalog and the page language: no database, no request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from covernet.catalog.disclosures import Disclosure
from covernet.catalog.pricing import is_on_sale, price_from
from covernet.catalog.service import ListedProduct
from covernet.catalog.spec import LINE_LABELS, CashValues, Frequency, Line, Product
from covernet.core.i18n import has_message, translate
from covernet.core.i18n_text import I18nText
from covernet.core.money import format_fen, format_fen_compact
from covernet.core.regions import PROVINCES

ALL_OCCUPATION_CLASSES = (1, 2, 3, 4, 5, 6)

# Quote errors the quote script shows in the page language (see quote.js).
QUOTE_ERROR_CODES = (
    "age_out_of_range",
    "birth_date_required",
    "gender_required",
    "id_number_mismatch",
    "invalid_birth_date",
    "invalid_id_number",
    "invalid_order_amount",
    "invalid_region",
    "malformed_request",
    "no_premium_rate",
    "occupation_not_covered",
    "order_amount_required",
    "payment_required",
    "plan_required",
    "product_not_on_sale",
    "region_not_covered",
    "region_required",
    "term_payment_not_offered",
    "term_required",
    "unknown_payment",
    "unknown_plan",
    "unknown_product",
    "unknown_term",
    "csrf_failed",
    "network",
)


def price_from_text(product: Product, lang: str) -> str:
    """``¥5.00/月起``, ``每单¥0.50起``, ``from ¥60.00/year``."""
    premium, frequency = price_from(product)
    return translate(f"price.from.{frequency.value}", lang, amount=format_fen(premium))


def unit_text(frequency: str, lang: str) -> str:
    """``/月``, ``/year``, ``/单``; a single premium needs no unit."""
    key = f"freq.unit.{frequency}"
    return translate(key, lang) if has_message(key) else ""


def is_per_order(product: Product) -> bool:
    return any(plan.per_order for plan in product.plans)


def occupation_matters(product: Product) -> bool:
    """Ask for the occupation class only when the product does not cover every class.

    Per-order cover protects a purchase, not a person: there is no one to ask about.
    """
    classes = tuple(product.eligibility.occupation_classes)
    return classes != ALL_OCCUPATION_CLASSES and not is_per_order(product)


def ranges(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """``[1, 2, 3, 5]`` -> ``[(1, 3), (5, 5)]``."""
    out: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def occupation_text(classes: Iterable[int], lang: str) -> str:
    parts = [f"{a}" if a == b else f"{a}–{b}" for a, b in ranges(classes)]
    return translate(
        "product.occupation_classes", lang, classes=("、" if lang == "zh" else ", ").join(parts)
    )


def ages_text(product: Product, lang: str) -> str:
    e = product.eligibility
    if e.min_age == 0 and e.min_age_days:
        return translate("product.ages_from_days", lang, days=e.min_age_days, max=e.max_age)
    return translate("product.ages", lang, min=e.min_age, max=e.max_age)


def provinces_for(product: Product, lang: str) -> list[tuple[str, str]]:
    codes = PROVINCES if product.sale.regions == "all" else product.sale.regions
    return [(code, PROVINCES[code][1 if lang == "en" else 0]) for code in codes]


def days_text(days: int, lang: str, none_key: str) -> str:
    return translate("unit.days", lang, n=days) if days else translate(none_key, lang)


@dataclass(frozen=True)
class Card:
    code: str
    name: I18nText
    tagline: I18nText
    highlights: list[I18nText]
    insurer: I18nText
    demo: bool
    price: str
    stop_date: date | None
    online_exclusive: bool


@dataclass(frozen=True)
class LineGroup:
    line: Line
    label: I18nText
    cards: list[Card] = field(default_factory=list)


def line_groups(products: Iterable[ListedProduct], today: date, lang: str) -> list[LineGroup]:
    """Products on sale, grouped by line in the order of ``LINE_LABELS`` (each in catalog order)."""
    groups = {line: LineGroup(line, label) for line, label in LINE_LABELS.items()}
    for listed in products:
        p = listed.product
        if not is_on_sale(p, today):
            continue
        groups[p.line].cards.append(
            Card(
                code=p.code,
                name=p.name,
                tagline=p.tagline,
                highlights=list(p.highlights),
                insurer=listed.insurer.name,
                demo=listed.insurer.demo,
                price=price_from_text(p, lang),
                stop_date=p.sale.stop_date,
                online_exclusive=p.sale.online_exclusive,
            )
        )
    return [g for g in groups.values() if g.cards]


def renewal_label(product: Product, lang: str) -> str:
    r = product.renewal
    if r.guaranteed:
        if r.years:
            return translate("product.renewal.guaranteed_years", lang, years=r.years)
        return translate("product.renewal.guaranteed", lang)
    return translate("product.renewal.not_guaranteed", lang)


def product_page(listed: ListedProduct, today: date, lang: str) -> dict[str, Any]:
    """Everything the product page shows beyond the declaration itself."""
    p = listed.product
    insurer = listed.insurer
    disclosures: list[Disclosure] = list(listed.disclosures)
    return {
        "listed": listed,
        "product": p,
        "insurer": insurer,
        "line_label": LINE_LABELS[p.line],
        "on_sale": is_on_sale(p, today),
        "price_from": price_from_text(p, lang),
        "per_order": is_per_order(p),
        "occupation_matters": occupation_matters(p),
        "occupation_text": occupation_text(p.eligibility.occupation_classes, lang),
        "ages_text": ages_text(p, lang),
        "provinces": provinces_for(p, lang),
        "all_regions": p.sale.regions == "all",
        "disclosures": disclosures,
        "renewal_label": renewal_label(p, lang),
        "effective_text": (
            translate("product.effective_after", lang, n=p.effective_after_days)
            if p.effective_after_days
            else translate("product.effective_same_day", lang)
        ),
        "waiting_text": days_text(p.waiting_period_days, lang, "product.none"),
        "grace_text": days_text(p.grace_period_days, lang, "product.none"),
        "cooling_off_text": (
            translate(
                "product.cooling_off",
                lang,
                n=p.cooling_off_days,
                fee=format_fen(p.cooling_off_fee_fen),
            )
            if p.cooling_off_days and p.cooling_off_fee_fen
            else days_text(p.cooling_off_days, lang, "product.none")
        ),
        "quote_data": quote_script_data(p, lang),
        "cash_chart": cash_value_chart(p.cash_values, lang),
    }


def quote_script_data(product: Product, lang: str) -> dict[str, Any]:
    """The labels and messages ``quote.js`` needs, in the page language."""
    return {
        "product": product.code,
        "lang": lang,
        "plans": {
            plan.code: {
                "name": plan.name.get(lang),
                "sum_insured": format_fen_compact(plan.sum_insured_fen, lang=lang),
            }
            for plan in product.plans
        },
        "terms": {t.code: t.label.get(lang) for t in product.terms_options},
        "payments": {p.code: p.label.get(lang) for p in product.payment_options},
        "units": {f.value: unit_text(f.value, lang) for f in Frequency},
        "messages": {code: translate(f"error.{code}", lang) for code in QUOTE_ERROR_CODES},
        "labels": {
            "age": translate("quote.age_value", lang),
            "whole_life": translate("quote.whole_life", lang),
            "busy": translate("quote.busy", lang),
        },
    }


CHART_W, CHART_H = 340, 200
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_BOTTOM = 52, 12, 14, 30


def _nice_ceiling(value: int) -> int:
    """Round up to 1, 2, 2.5 or 5 times a power of ten (axis maximum)."""
    magnitude: int = 10 ** (len(str(max(value, 1))) - 1)
    for tenths in (10, 20, 25, 50):
        candidate = tenths * magnitude // 10
        if candidate >= value:
            return candidate
    return 10 * magnitude


def cash_value_chart(cash_values: CashValues | None, lang: str) -> dict[str, Any] | None:
    """An SVG line chart of cash value against premiums paid, by policy year.

    People see at a glance what surrendering early costs (R5, R17); the table stays
    below it for exact figures.  ``None`` when the product publishes no premiums to
    compare with.
    """
    if cash_values is None or cash_values.annual_premium_fen is None:
        return None
    rows = cash_values.rows
    paid = [cash_values.premiums_paid(r.policy_year) or 0 for r in rows]
    top = _nice_ceiling(max(max(r.value_fen for r in rows), max(paid)))
    last_year = rows[-1].policy_year
    plot_w = CHART_W - CHART_LEFT - CHART_RIGHT
    plot_h = CHART_H - CHART_TOP - CHART_BOTTOM

    def x(year: int) -> float:
        return CHART_LEFT + plot_w * year / last_year

    def y(fen: int) -> float:
        return CHART_TOP + plot_h * (1 - fen / top)

    def points(values: list[int]) -> str:
        return " ".join(
            f"{x(r.policy_year):.1f},{y(v):.1f}" for r, v in zip(rows, values, strict=True)
        )

    crossing = next(
        (r.policy_year for r, p in zip(rows, paid, strict=True) if r.value_fen >= p), None
    )
    summary = (
        translate("product.chart.breakeven", lang, n=crossing)
        if crossing is not None
        else translate("product.chart.no_breakeven", lang)
    )
    return {
        "width": CHART_W,
        "height": CHART_H,
        "value_points": points([r.value_fen for r in rows]),
        "paid_points": points(paid),
        "y_ticks": [
            {"y": f"{y(v):.1f}", "label": format_fen_compact(v, lang=lang)}
            for v in (0, top // 2, top)
        ],
        "x_ticks": [
            {"x": f"{x(year):.1f}", "label": str(year)}
            for year in sorted({rows[0].policy_year, (last_year + 1) // 2, last_year})
        ],
        "left": CHART_LEFT,
        "right": CHART_W - CHART_RIGHT,
        "bottom": CHART_H - CHART_BOTTOM,
        "summary": summary,
    }
