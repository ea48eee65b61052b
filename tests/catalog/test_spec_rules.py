"""Catalog rules that close loopholes: whole-gift premiums, payment-specific rows,
rows that never apply, zero premiums and disguised catch-all health questions."""

from __future__ import annotations

from typing import Any

import pytest

from covernet.catalog.spec import Product
from tests.catalog.helpers import product_data

YEAR_MONTHLY = {"code": "12m", "label": {"zh": "12个月"}, "months": 12}


def _accident(**change: Any) -> dict[str, Any]:
    data = product_data("accident-monthly")
    data.update(change)
    return data


def test_a_gift_is_limited_over_its_whole_term_not_per_instalment() -> None:
    data = _accident(terms_options=[YEAR_MONTHLY])
    data["plans"][0]["premiums"][0]["premium_fen"] = 10_00  # ¥10 a month, ¥120 a year
    data["plans"] = data["plans"][:1]
    with pytest.raises(ValueError, match="whole gift"):
        Product.model_validate(data)
    data["plans"][0]["premiums"][0]["premium_fen"] = 8_00  # ¥96 a year: allowed
    assert Product.model_validate(data).giftable


def test_rows_must_name_their_payment_when_frequencies_differ() -> None:
    annual = {"code": "annual", "label": {"zh": "按年交"}, "frequency": "annual"}
    data = _accident(
        payment_options=[*product_data("accident-monthly")["payment_options"], annual],
        giftable=False,
    )
    with pytest.raises(ValueError, match="names its payment"):
        Product.model_validate(data)


def test_a_row_that_never_applies_is_refused() -> None:
    data = product_data("medical-million")
    data["plans"][0]["premiums"].append({"age": [90, 99], "premium_fen": 1})
    with pytest.raises(ValueError, match="never applies"):
        Product.model_validate(data)


def test_a_free_premium_row_is_refused() -> None:
    data = _accident()
    data["plans"][0]["premiums"][0]["premium_fen"] = 0
    with pytest.raises(ValueError, match="premium_fen"):
        Product.model_validate(data)


@pytest.mark.parametrize(
    "question",
    [
        "是否患有其它疾病？",
        "是否患有上述以外的疾病？",
        "是否有其他未列明的疾病或症状？",
        "目前身体有无不适？",
        "Do you have other illnesses not listed here?",
        "Are you in good health?",
        "是否患有任何疾病？",
    ],
)
def test_disguised_catch_all_health_questions_are_refused(question: str) -> None:
    data = product_data("medical-million")
    data["health_questions"][0]["text"] = (
        {"zh": question, "en": "x"}
        if question[0] > "~"
        else {"zh": "是否患有恶性肿瘤？", "en": question}
    )
    with pytest.raises(ValueError, match="R6"):
        Product.model_validate(data)


def test_specific_health_questions_pass() -> None:
    data = product_data("medical-million")
    data["health_questions"][0]["text"] = {
        "zh": "过去两年内是否被诊断患有恶性肿瘤、肝硬化或慢性肾病？",
        "en": "In the past two years, were you diagnosed with cancer, cirrhosis or chronic "
        "kidney disease?",
    }
    assert Product.model_validate(data).health_questions


def test_years_of_premiums_cannot_outlast_a_short_term() -> None:
    data = _accident(giftable=False)
    data["payment_options"][0]["years"] = 20
    with pytest.raises(ValueError, match="outlast the short term"):
        Product.model_validate(data)


def test_specific_questions_mentioning_other_insurers_are_fine() -> None:
    data = product_data("medical-million")
    data["health_questions"][0]["text"] = {
        "zh": "过去两年内是否曾被其他保险公司拒保、延期或加费承保？",
        "en": "In the past two years, has another insurer declined, postponed or rated you?",
    }
    assert Product.model_validate(data).health_questions


def test_a_gift_over_days_paid_monthly_counts_every_month() -> None:
    data = _accident(terms_options=[{"code": "365d", "label": {"zh": "365天"}, "days": 365}])
    data["plans"] = data["plans"][:1]
    data["plans"][0]["premiums"][0]["premium_fen"] = 10_00  # 13 months of ¥10
    with pytest.raises(ValueError, match="whole gift"):
        Product.model_validate(data)


def test_years_of_premiums_may_fit_a_term_given_in_months() -> None:
    data = _accident(
        giftable=False, terms_options=[{"code": "24m", "label": {"zh": "24个月"}, "months": 24}]
    )
    data["payment_options"][0]["years"] = 2
    assert Product.model_validate(data).payment_options[0].years == 2
