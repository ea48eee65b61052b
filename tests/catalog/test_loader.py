"""The shipped demo catalog, the loader's error reports and the catalog rules."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from covernet.catalog.loader import CatalogError, catalog_digest, load_catalog, product_digest
from covernet.catalog.spec import (
    Frequency,
    Gender,
    Kind,
    Line,
    Product,
    SaleStatus,
)
from covernet.core.errors import ValidationFailed
from covernet.core.i18n_text import I18nText

from .helpers import (
    CATALOG_DIR,
    edit_yaml,
    product,
    product_data,
    scratch_catalog,
    shipped,
)

TODAY = date(2026, 11, 22)
PRODUCT_CODES = {
    "accident-monthly",
    "medical-million",
    "return-shipping",
    "flight-delay",
    "screen-guard",
    "ci-lifetime",
    "annuity-participating",
    "travel-medical",
    "account-security",
}
YUAN = 100


# --- the shipped catalog -------------------------------------------------------------


def test_shipped_catalog_loads_with_every_product() -> None:
    catalog = shipped()
    assert {p.code for p in catalog.products} == PRODUCT_CODES
    assert [p.code for p in catalog.products] == sorted(p.code for p in catalog.products)
    assert len(catalog.insurers) == 3


def test_files_are_named_after_their_codes() -> None:
    for folder, items in (("insurers", shipped().insurers), ("products", shipped().products)):
        names = sorted(p.stem for p in (CATALOG_DIR / folder).glob("*.yaml"))
        assert names == sorted(i.code for i in items)


def test_demo_insurers_say_so() -> None:
    for insurer in shipped().insurers:
        assert insurer.demo is True
        assert "演示" in insurer.name.zh and "演示" in insurer.legal_name.zh
        assert insurer.legal_name.en and "demo" in insurer.legal_name.en.lower()
        assert insurer.service_phone
        assert insurer.premium_account
    lines = {p.line for p in shipped().products}
    assert {Line.accident, Line.medical, Line.critical_illness, Line.life} <= lines


def test_accident_monthly_five_yuan_for_300k_and_sixteen_for_a_million() -> None:
    accident = product("accident-monthly")
    assert accident.line is Line.accident
    assert [t.months for t in accident.terms_options] == [1]
    assert [p.frequency for p in accident.payment_options] == [Frequency.monthly]
    basic, plus = accident.plan("basic"), accident.plan("plus")
    assert basic is not None and plus is not None
    assert basic.sum_insured_fen == 300_000 * YUAN
    assert [r.premium_fen for r in basic.premiums] == [5 * YUAN]
    assert plus.sum_insured_fen == 1_000_000 * YUAN
    assert [r.premium_fen for r in plus.premiums] == [16 * YUAN]
    assert (accident.eligibility.min_age, accident.eligibility.max_age) == (18, 60)
    assert accident.giftable


def test_medical_sixty_yuan_a_year_for_500k() -> None:
    medical = product("medical-million")
    assert medical.line is Line.medical
    plan = medical.plan("standard")
    assert plan is not None
    assert plan.sum_insured_fen == 500_000 * YUAN
    youngest = min(plan.premiums, key=lambda r: r.age[0] if r.age else 0)
    assert youngest.premium_fen == 60 * YUAN
    assert any(r.age == (18, 30) and r.premium_fen == 60 * YUAN for r in plan.premiums)
    assert [t.years for t in medical.terms_options] == [1]
    assert [p.frequency for p in medical.payment_options] == [Frequency.annual]
    assert medical.waiting_period_days == 30
    general = next(c for c in plan.coverages if c.code == "general-hospital")
    assert general.deductible_fen == 10_000 * YUAN
    assert not medical.renewal.guaranteed
    assert "不保证续保" in medical.renewal.note.zh
    assert medical.health_questions
    elig = medical.eligibility
    assert (elig.min_age, elig.min_age_days, elig.max_age) == (0, 30, 65)


def test_ci_lifetime_has_cash_values_and_a_15_day_cooling_off() -> None:
    ci = product("ci-lifetime")
    assert ci.line is Line.critical_illness
    assert ci.cash_values is not None and len(ci.cash_values.rows) >= 10
    assert ci.cooling_off_days == 15
    assert ci.waiting_period_days == 180
    assert {(t.to_age, t.whole_life) for t in ci.terms_options} == {(70, False), (None, True)}
    payments = {p.code: p for p in ci.payment_options}
    assert payments["pay20"].years == 20 and payments["pay30"].years == 30
    assert payments["single"].frequency is Frequency.single
    plan = ci.plans[0]
    assert {r.gender for r in plan.premiums} == {Gender.male, Gender.female}
    assert ci.surrender.documents and ci.health_questions


def test_participating_annuity() -> None:
    annuity = product("annuity-participating")
    assert annuity.kind is Kind.participating and annuity.uncertain_benefits
    assert annuity.cash_values is not None
    assert annuity.cooling_off_days == 15
    assert {p.code: p.years for p in annuity.payment_options} == {"single": None, "pay10": 10}
    banned = (
        "保本",
        "保证收益",
        "收益",
        "稳赚",
        "无风险",
        "零风险",
        "理财",
        "储蓄",
        "存款",
        "利息",
    )
    texts = _all_texts(product_data("annuity-participating"))
    for word in banned:
        assert not any(word in t for t in texts), word


def test_return_shipping_is_priced_per_order_in_bands() -> None:
    shipping = product("return-shipping")
    plan = shipping.plans[0]
    assert plan.per_order
    assert [p.frequency for p in shipping.payment_options] == [Frequency.per_order]
    bands = sorted(
        ((r.order_amount_max_fen, r.premium_fen) for r in plan.premiums),
        key=lambda b: (b[0] is None, b[0] or 0),
    )
    assert bands == [(100 * YUAN, 50), (500 * YUAN, 120), (None, 200)]
    assert [t.days for t in shipping.terms_options] == [90]


def test_travel_medical_terms_and_plans() -> None:
    travel = product("travel-medical")
    assert [t.days for t in travel.terms_options] == [7, 15, 30]
    assert len(travel.plans) == 2
    bands = {r.age for p in travel.plans for r in p.premiums}
    assert bands == {(0, 17), (18, 60), (61, 80)}


def test_a_product_shows_an_announced_stop() -> None:
    stopping = [
        p
        for p in shipped().products
        if p.sale.stop_notice_date
        and p.sale.stop_date
        and p.sale.stop_notice_date < TODAY < p.sale.stop_date
    ]
    assert stopping
    assert all(p.sale.status is SaleStatus.on_sale for p in stopping)


def test_every_product_is_complete_and_bilingual() -> None:
    for item in shipped().products:
        assert item.terms.exclusions and item.terms.claims_procedure.zh
        assert item.surrender.conditions.zh and item.surrender.documents
        assert item.highlights and item.tagline.zh
        texts = list(_i18n(item))
        assert texts
        missing = [t.zh for t in texts if not t.en]
        assert not missing, (item.code, missing)
        for plan in item.plans:
            assert isinstance(plan.sum_insured_fen, int)
            assert all(isinstance(r.premium_fen, int) for r in plan.premiums)


def test_no_marketing_hype_in_the_catalog() -> None:
    banned = ("最佳", "第一", "最便宜", "即将停售", "最后一波", "末班车", "最后机会", "保本")
    for item in shipped().products:
        for text in _all_texts(product_data(item.code)):
            assert not any(word in text for word in banned), (item.code, text)


def test_digests_are_stable_and_change_with_the_product(tmp_path: Path) -> None:
    again = load_catalog(CATALOG_DIR)
    for a, b in zip(shipped().products, again.products, strict=True):
        assert product_digest(a) == product_digest(b)
    assert catalog_digest(shipped()) == catalog_digest(again)
    digests = {product_digest(p) for p in shipped().products}
    assert len(digests) == len(PRODUCT_CODES)
    assert all(len(d) == 64 for d in digests)
    root = scratch_catalog(tmp_path)
    edit_yaml(root / "products" / "accident-monthly.yaml", _set("tagline", "每月5元"))
    changed = load_catalog(root)
    old, new = product("accident-monthly"), _find(changed.products, "accident-monthly")
    assert product_digest(old) != product_digest(new)
    assert catalog_digest(changed) != catalog_digest(shipped())
    same = _find(changed.products, "medical-million")
    assert product_digest(same) == product_digest(product("medical-million"))


# --- loader errors -------------------------------------------------------------------


def test_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    root = scratch_catalog(tmp_path)
    path = root / "products" / "accident-monthly.yaml"

    def break_premium(data: dict[str, Any]) -> None:
        data["plans"][1]["premiums"][0]["premium_fen"] = "sixteen"

    edit_yaml(path, break_premium)
    with pytest.raises(CatalogError) as caught:
        load_catalog(root)
    error = caught.value
    assert isinstance(error, ValidationFailed)
    assert error.code == "catalog_invalid"
    assert str(path) in error.message
    assert "plans.1.premiums.0.premium_fen" in error.message
    assert "integer" in error.message
    [entry] = error.detail["errors"]
    assert entry["file"] == str(path)
    assert entry["loc"] == "plans.1.premiums.0.premium_fen"
    assert "integer" in entry["message"]
    assert error.to_dict()["error"] == "catalog_invalid"


def test_errors_from_every_file_are_collected(tmp_path: Path) -> None:
    root = scratch_catalog(tmp_path)
    edit_yaml(root / "products" / "accident-monthly.yaml", _drop("tagline"))
    edit_yaml(root / "products" / "screen-guard.yaml", _set("colour", "blue"))
    edit_yaml(root / "insurers" / "anxin-pc.yaml", _set("demo", "perhaps"))
    errors = _errors(root)
    found = {(Path(e["file"]).name, e["loc"]) for e in errors}
    assert ("accident-monthly.yaml", "tagline") in found
    assert ("screen-guard.yaml", "colour") in found
    assert ("anxin-pc.yaml", "demo") in found


def test_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    root = scratch_catalog(tmp_path)
    path = root / "products" / "flight-delay.yaml"
    path.write_text("code: flight-delay\nname: [unclosed\n", "utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(root)
    assert str(path) in caught.value.message
    assert "YAML" in caught.value.message


def test_repeated_yaml_keys_are_refused(tmp_path: Path) -> None:
    root = scratch_catalog(tmp_path)
    path = root / "products" / "flight-delay.yaml"
    path.write_text(path.read_text("utf-8") + "giftable: false\ngiftable: true\n", "utf-8")
    errors = _errors(root)
    assert any("repeated key" in e["message"] and e["file"] == str(path) for e in errors)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    root = scratch_catalog(tmp_path)
    path = root / "products" / "empty.yaml"
    path.write_text("# nothing here\n", "utf-8")
    errors = _errors(root)
    assert [e["file"] for e in errors] == [str(path)]


def test_missing_directories(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in caught.value.message
    root = scratch_catalog(tmp_path)
    for path in (root / "insurers").iterdir():
        path.unlink()
    (root / "insurers").rmdir()
    errors = _errors(root)
    assert any(e["file"] == str(root / "insurers") for e in errors)


def test_unknown_insurer_and_repeated_codes_name_the_file(tmp_path: Path) -> None:
    root = scratch_catalog(tmp_path)
    edit_yaml(root / "products" / "screen-guard.yaml", _set("insurer", "nobody"))
    copy = root / "products" / "zz-copy.yaml"
    copy.write_text((root / "products" / "flight-delay.yaml").read_text("utf-8"), "utf-8")
    errors = _errors(root)
    assert {
        "file": str(root / "products" / "screen-guard.yaml"),
        "loc": "insurer",
        "message": "unknown insurer nobody",
    } in errors
    assert any(e["file"] == str(copy) and "already used" in e["message"] for e in errors)


# --- catalog rules -------------------------------------------------------------------


def test_catch_all_health_question_is_refused(tmp_path: Path) -> None:
    def catch_all(data: dict[str, Any]) -> None:
        data["health_questions"].append(
            {"code": "anything-else", "text": {"zh": "是否患有其他疾病或身体不适？"}}
        )

    message = _broken(tmp_path, "medical-million", catch_all)
    assert "health_questions.4" in message and "catch-all" in message and "R6" in message
    for text in ("被保险人身体是否健康？", "Do you have any other condition?", "任何疾病"):
        with pytest.raises(ValueError, match="catch-all"):
            make_question(text)


def test_short_term_medical_without_not_guaranteed_renewal_is_refused(tmp_path: Path) -> None:
    def promise(data: dict[str, Any]) -> None:
        data["renewal"]["note"] = {"zh": "到期可续保", "en": "Renewable"}

    message = _broken(tmp_path, "medical-million", promise)
    assert "不保证续保" in message and "R8" in message
    with pytest.raises(ValueError, match="不保证续保"):
        _variant("medical-million", renewal={"guaranteed": True, "note": "不保证续保（笔误）"})


def test_premium_table_gap_is_refused(tmp_path: Path) -> None:
    def gap(data: dict[str, Any]) -> None:
        data["plans"][0]["premiums"][4]["age"] = [32, 40]

    message = _broken(tmp_path, "medical-million", gap)
    assert "no premium for age 31" in message


def test_premium_table_overlap_is_refused(tmp_path: Path) -> None:
    def overlap(data: dict[str, Any]) -> None:
        data["plans"][0]["premiums"][4]["age"] = [30, 40]

    message = _broken(tmp_path, "medical-million", overlap)
    assert "2 premium rows match age 30" in message


def test_gendered_table_missing_a_gender_is_refused() -> None:
    data = product_data("ci-lifetime")
    rows = data["plans"][0]["premiums"]
    data["plans"][0]["premiums"] = [
        r for r in rows if not (r["gender"] == "F" and r["age"][0] == 20)
    ]
    with pytest.raises(ValueError, match="no premium for age 20, F"):
        Product.model_validate(data)


def test_upside_down_age_band_is_refused() -> None:
    data = product_data("medical-million")
    data["plans"][0]["premiums"][0]["age"] = [4, 0]
    with pytest.raises(ValueError, match="upside down"):
        Product.model_validate(data)


def test_stop_date_before_its_notice_is_refused(tmp_path: Path) -> None:
    def early(data: dict[str, Any]) -> None:
        data["sale"]["stop_notice_date"] = date(2027, 4, 1)

    message = _broken(tmp_path, "account-security", early)
    assert "R20" in message
    same_day = _variant(
        "account-security",
        sale={"stop_notice_date": date(2027, 3, 31), "stop_date": date(2027, 3, 31)},
    )
    assert same_day.sale.stop_date == date(2027, 3, 31)
    with pytest.raises(ValueError, match="notice"):
        _variant("account-security", sale={"stop_notice_date": None})


def test_giftable_property_product_is_refused(tmp_path: Path) -> None:
    message = _broken(tmp_path, "screen-guard", _set("giftable", True))
    assert "R12" in message and "accident or health" in message


def test_gift_limits() -> None:
    with pytest.raises(ValueError, match="at most one year"):
        _variant("ci-lifetime", giftable=True, line="medical")
    data = product_data("accident-monthly")
    data["plans"][1]["premiums"][0]["premium_fen"] = 100 * YUAN + 1
    with pytest.raises(ValueError, match="100 yuan"):
        Product.model_validate(data)


def test_long_term_life_product_needs_a_cooling_off_period() -> None:
    with pytest.raises(ValueError, match="R17"):
        _variant("ci-lifetime", cooling_off_days=10)


def test_uncertain_benefit_product_needs_cash_values() -> None:
    with pytest.raises(ValueError, match="cash values"):
        _variant("annuity-participating", cash_values=None)


def test_unknown_region_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown region"):
        _variant("accident-monthly", sale={"regions": ["310000", "999999"]})


def test_term_must_outlast_the_oldest_insured() -> None:
    data = product_data("ci-lifetime")
    data["terms_options"][0]["to_age"] = 50
    with pytest.raises(ValueError, match="ends before the oldest"):
        Product.model_validate(data)


def test_premiums_may_not_outlast_cover() -> None:
    data = product_data("ci-lifetime")
    data["plans"][0]["premiums"].append(
        {"age": [0, 50], "term": "to70", "payment": "pay30", "premium_fen": 100}
    )
    with pytest.raises(ValueError, match="after cover"):
        Product.model_validate(data)
    screen = product_data("screen-guard")
    screen["payment_options"][0].update({"frequency": "annual", "years": 3})
    with pytest.raises(ValueError, match="outlast the 1-year term"):
        Product.model_validate(screen)


def test_per_order_bands_must_be_complete() -> None:
    data = product_data("return-shipping")
    data["plans"][0]["premiums"] = data["plans"][0]["premiums"][:2]
    with pytest.raises(ValueError, match="open-ended"):
        Product.model_validate(data)
    data = product_data("return-shipping")
    data["plans"][0]["premiums"][1]["order_amount_max_fen"] = 10000
    with pytest.raises(ValueError, match="bands repeat"):
        Product.model_validate(data)
    data = product_data("return-shipping")
    data["plans"][0]["premiums"][0]["age"] = [0, 17]
    with pytest.raises(ValueError, match="may not depend on age"):
        Product.model_validate(data)
    data = product_data("flight-delay")
    data["plans"][0]["premiums"] = [
        {"order_amount_max_fen": 100, "premium_fen": 1},
        {"premium_fen": 2},
    ]
    with pytest.raises(ValueError, match="per-order plans only"):
        Product.model_validate(data)


def test_per_order_plan_needs_a_per_order_payment() -> None:
    data = product_data("return-shipping")
    data["payment_options"][0]["frequency"] = "single"
    with pytest.raises(ValueError, match="per_order payment"):
        Product.model_validate(data)


def test_repeated_codes_in_a_product_are_refused() -> None:
    data = product_data("travel-medical")
    data["plans"][1]["code"] = data["plans"][0]["code"]
    with pytest.raises(ValueError, match="plan codes repeat"):
        Product.model_validate(data)


def test_term_needs_exactly_one_length() -> None:
    data = product_data("screen-guard")
    data["terms_options"][0]["days"] = 365
    with pytest.raises(ValueError, match="exactly one"):
        Product.model_validate(data)


# --- helpers -------------------------------------------------------------------------


def make_question(text: str) -> object:
    from covernet.catalog.spec import HealthQuestion

    return HealthQuestion(code="q1", text=I18nText(zh=text))


def _variant(code: str, **changes: Any) -> Product:
    data = product_data(code)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return Product.model_validate(data)


def _broken(tmp_path: Path, code: str, change: Any) -> str:
    """Break one shipped product in a scratch copy; return the loader's message."""
    root = scratch_catalog(tmp_path)
    path = root / "products" / f"{code}.yaml"
    edit_yaml(path, change)
    with pytest.raises(CatalogError) as caught:
        load_catalog(root)
    message = caught.value.message
    assert str(path) in message
    assert all(e["file"] == str(path) for e in caught.value.detail["errors"])
    return message


def _errors(root: Path) -> list[dict[str, str]]:
    with pytest.raises(CatalogError) as caught:
        load_catalog(root)
    errors: list[dict[str, str]] = caught.value.detail["errors"]
    for entry in errors:
        assert entry["file"] in caught.value.message
    return errors


def _set(key: str, value: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        data[key] = value

    return change


def _drop(key: str) -> Any:
    def change(data: dict[str, Any]) -> None:
        del data[key]

    return change


def _find(products: list[Product], code: str) -> Product:
    return next(p for p in products if p.code == code)


def _i18n(value: object) -> Any:
    """Every I18nText inside a model."""
    if isinstance(value, I18nText):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _i18n(item)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _i18n(getattr(value, name))


def _all_texts(data: object) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [t for v in data.values() for t in _all_texts(v)]
    if isinstance(data, list):
        return [t for v in data for t in _all_texts(v)]
    return []


def test_yaml_dump_round_trip_keeps_loading(tmp_path: Path) -> None:
    """A scratch copy re-dumped by PyYAML still loads: the helpers do not distort data."""
    root = scratch_catalog(tmp_path)
    for path in sorted((root / "products").glob("*.yaml")):
        edit_yaml(path, lambda data: None)
    reloaded = load_catalog(root)
    assert [product_digest(p) for p in reloaded.products] == [
        product_digest(p) for p in shipped().products
    ]
    assert yaml.safe_load((root / "products" / "ci-lifetime.yaml").read_text("utf-8"))
