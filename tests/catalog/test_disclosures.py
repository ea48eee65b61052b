"""Pre-purchase disclosures (R5, R7, R8, R17) derived from the shipped products."""

from __future__ import annotations

import pytest

from covernet.catalog.disclosures import (
    UNCERTAINTY_STATEMENT,
    Disclosure,
    disclosures_for,
)
from covernet.catalog.spec import Kind, Product

from .helpers import insurer_of, make_product, product, shipped

PROTECTION = [p.code for p in shipped().products if p.kind is Kind.protection]


def _by_code(item: Product) -> dict[str, Disclosure]:
    found = disclosures_for(item, insurer_of(item))
    codes = [d.code for d in found]
    assert len(codes) == len(set(codes)), codes
    return {d.code: d for d in found}


def test_the_typed_statement_is_the_regulatory_wording() -> None:
    assert UNCERTAINTY_STATEMENT == (
        "本人已阅读保险条款、产品说明书和投保提示书，了解本产品的特点和保单利益的不确定性"
    )


def test_participating_annuity_states_uncertainty_emphasised() -> None:
    annuity = product("annuity-participating")
    found = _by_code(annuity)
    uncertain = found["uncertain_benefits"]
    assert uncertain.emphasis is True
    assert uncertain.rule == "R7"
    assert "保单利益具有不确定性" in uncertain.text.zh
    assert UNCERTAINTY_STATEMENT in uncertain.text.zh
    assert uncertain.text.en and "uncertain" in uncertain.text.en
    # Shown right after "this is insurance", before anything else.
    codes = [d.code for d in disclosures_for(annuity, insurer_of(annuity))]
    assert codes[:2] == ["is_insurance", "uncertain_benefits"]


@pytest.mark.parametrize("kind", [Kind.universal, Kind.unit_linked])
def test_other_uncertain_kinds_state_uncertainty(kind: Kind) -> None:
    variant = make_product("annuity-participating", kind=kind.value)
    uncertain = _by_code(variant)["uncertain_benefits"]
    assert uncertain.emphasis and "保单利益具有不确定性" in uncertain.text.zh


@pytest.mark.parametrize("code", PROTECTION)
def test_protection_products_have_no_uncertainty_disclosure(code: str) -> None:
    found = _by_code(product(code))
    assert "uncertain_benefits" not in found
    assert not any("不确定性" in d.text.zh for d in found.values())


@pytest.mark.parametrize("code", sorted(p.code for p in shipped().products))
def test_every_product_has_the_basic_prompts(code: str) -> None:
    item = product(code)
    insurer = insurer_of(item)
    found = _by_code(item)
    assert next(iter(found)) == "is_insurance"
    assert "保险产品" in found["is_insurance"].text.zh
    exclusions = found["exclusions"]
    assert exclusions.emphasis
    for exclusion in item.terms.exclusions:
        assert exclusion.zh in exclusions.text.zh
    service = found["service"]
    assert insurer.service_phone in service.text.zh
    assert insurer.complaint_channel.zh in service.text.zh
    assert "renewal" in found and "claims" in found
    for disclosure in found.values():
        assert disclosure.text.zh and disclosure.text.en
        assert disclosure.rule in {"R5", "R7", "R8", "R17"}


def test_short_term_medical_says_renewal_is_not_guaranteed() -> None:
    renewal = _by_code(product("medical-million"))["renewal"]
    assert "不保证续保" in renewal.text.zh
    assert renewal.text.zh.count("不保证续保") == 1
    assert renewal.emphasis is True
    assert renewal.rule == "R8"
    assert renewal.text.en and "not guaranteed" in renewal.text.en


def test_non_health_short_term_renewal_is_not_emphasised() -> None:
    renewal = _by_code(product("accident-monthly"))["renewal"]
    assert renewal.emphasis is False
    assert "不保证续保" in renewal.text.zh
    screen = _by_code(product("screen-guard"))["renewal"]
    assert screen.text.zh.startswith("本产品不保证续保")


def test_long_term_renewal_shows_the_note() -> None:
    ci = product("ci-lifetime")
    renewal = _by_code(ci)["renewal"]
    assert renewal.text == ci.renewal.note
    assert renewal.emphasis is False


def test_guaranteed_renewal_says_for_how_long() -> None:
    variant = make_product(
        "accident-monthly",
        renewal={"guaranteed": True, "years": 5, "note": {"zh": "续保需确认", "en": "Confirm"}},
    )
    renewal = _by_code(variant)["renewal"]
    assert "保证续保5年" in renewal.text.zh
    assert "guaranteed for 5 years" in (renewal.text.en or "")


def test_cooling_off_mentions_the_days() -> None:
    ci = _by_code(product("ci-lifetime"))["cooling_off"]
    assert "15天" in ci.text.zh and "犹豫期" in ci.text.zh
    assert ci.text.en and "15 days" in ci.text.en
    assert ci.rule == "R17" and ci.emphasis
    assert "全额" in ci.text.zh
    annuity = _by_code(product("annuity-participating"))["cooling_off"]
    assert "15天" in annuity.text.zh and "10元" in annuity.text.zh
    assert "现金价值" in annuity.text.zh


def test_no_cooling_off_prompt_without_a_cooling_off_period() -> None:
    for code in ("accident-monthly", "medical-million", "return-shipping"):
        assert "cooling_off" not in _by_code(product(code))


def test_waiting_period_names_the_days() -> None:
    assert "30天等待期" in _by_code(product("medical-million"))["waiting_period"].text.zh
    ci = _by_code(product("ci-lifetime"))["waiting_period"]
    assert "180天" in ci.text.zh and ci.text.en and "180-day" in ci.text.en
    assert "续保" not in ci.text.zh  # long-term cover is not renewed
    assert "waiting_period" not in _by_code(product("accident-monthly"))


def test_health_disclosure_exactly_when_there_are_health_questions() -> None:
    for item in shipped().products:
        found = _by_code(item)
        assert ("health_disclosure" in found) == bool(item.health_questions), item.code
    text = _by_code(product("medical-million"))["health_disclosure"].text.zh
    assert "如实" in text and "解除合同" in text


def test_surrender_and_cash_values() -> None:
    ci = product("ci-lifetime")
    surrender = _by_code(ci)["surrender"]
    assert surrender.emphasis and surrender.rule == "R17"
    assert "损失" in surrender.text.zh and "现金价值" in surrender.text.zh
    assert "第1年末1,050元" in surrender.text.zh
    assert f"{ci.surrender.processing_days}日内" in surrender.text.zh
    for item in shipped().products:
        assert ("surrender" in _by_code(item)) == (item.cash_values is not None)


def test_grace_period_for_regular_premiums() -> None:
    grace = _by_code(product("ci-lifetime"))["grace_period"]
    assert "60天" in grace.text.zh
    assert "grace_period" not in _by_code(product("medical-million"))


def test_extra_disclosures_come_last() -> None:
    annuity = product("annuity-participating")
    found = disclosures_for(annuity, insurer_of(annuity))
    assert [d.text for d in found[-len(annuity.extra_disclosures) :]] == list(
        annuity.extra_disclosures
    )
    assert found[-1].code == "extra_1"


def test_wrong_insurer_is_refused() -> None:
    with pytest.raises(ValueError, match="underwritten"):
        disclosures_for(product("ci-lifetime"), insurer_of(product("accident-monthly")))
