"""Offer rules without a database: the YAML language (each error names its field), the
conditions, quiet hours and trip terms; ``covernet catalog check`` validates the rule
files (referrals and offers) beside the catalog."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime, time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covernet.catalog.loader import load_catalog
from covernet.core import clock
from covernet.core.errors import ValidationFailed
from covernet.social import offer_rules as rules
from covernet.social.offers import quiet_until, trip_term

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "catalog"
QUIET = rules.QuietHours(start=time(21), end=time(8))


@pytest.fixture(scope="module")
def catalog() -> Any:
    return load_catalog(CATALOG)


def doc(**rule: Any) -> str:
    import yaml

    base: dict[str, Any] = {
        "code": "r1",
        "title": {"zh": "标题", "en": "Title"},
        "event": "hospital.payment",
        "when": ["amount_fen >= 20000"],
        "offer": {"kind": "quote", "product": "medical-million", "plan": "standard"},
    }
    base.update(rule)
    return yaml.safe_dump({"version": 1, "rules": [base]}, allow_unicode=True)


def refusal(text: str, catalog: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        rules.parse(text, catalog)
    assert caught.value.code == "bad_offer_rules"
    return caught.value


def test_the_shipped_rules_are_valid(catalog: Any) -> None:
    config = rules.load(CATALOG, catalog)
    assert {r.event for r in config.rules} == set(rules.EVENT_TYPES)
    assert config.daily_cap == 3 and config.quiet_hours.start == time(21)


@pytest.mark.parametrize(
    ("rule", "field", "words"),
    [
        ({"when": ["amout_fen >= 1"]}, "rules[0] (r1).when[0]", "no attribute 'amout_fen'"),
        ({"when": ["mobile == 13800138000"]}, "rules[0] (r1).when[0]", "no attribute 'mobile'"),
        ({"when": ["city >= 3"]}, "rules[0] (r1).when[0]", "not a number"),
        ({"when": ["amount_fen >= lots"]}, "rules[0] (r1).when[0]", "whole number"),
        ({"when": ["city in 上海"]}, "rules[0] (r1).when[0]", "needs a list"),
        ({"when": ["amount_fen about 3"]}, "rules[0] (r1).when[0]", "is not a condition"),
        ({"event": "hospital.paid"}, "rules[0] (r1).event", "no offer event type"),
        ({"cap": {"max": 0}}, "rules[0] (r1).cap.max", "greater than or equal to 1"),
        ({"expires_hours": 0}, "rules[0] (r1).expires_hours", "greater than or equal to 1"),
        ({"colour": "red"}, "rules[0] (r1).colour", "Extra inputs"),
        (
            {"offer": {"kind": "quote", "product": "medical-million", "plan": "gold"}},
            "rules[0] (r1).offer.plan",
            "no plan 'gold'",
        ),
        (
            {"offer": {"kind": "quote", "product": "nope", "plan": "x"}},
            "rules[0] (r1).offer.product",
            "no product 'nope'",
        ),
        (
            {
                "offer": {
                    "kind": "quote",
                    "product": "medical-million",
                    "plan": "standard",
                    "term": "trip",
                }
            },
            "rules[0] (r1).offer.term",
            "needs flight.booked",
        ),
        (
            {
                "offer": {
                    "kind": "gift",
                    "product": "accident-monthly",
                    "plan": "basic",
                    "redeem_with": "points",
                }
            },
            "rules[0] (r1).offer.cost",
            "Field required",
        ),
        (
            {
                "offer": {
                    "kind": "gift",
                    "product": "accident-monthly",
                    "plan": "basic",
                    "redeem_with": "points",
                    "cost": 5,
                }
            },
            "rules[0] (r1).offer.redeem_with",
            "points.earned",
        ),
        (
            {
                "event": "points.earned",
                "when": [],
                "offer": {
                    "kind": "gift",
                    "product": "account-security",
                    "plan": "basic",
                    "redeem_with": "points",
                    "cost": 5,
                },
            },
            "rules[0] (r1).offer.product",
            "never property (R12)",
        ),
        (
            {
                "event": "points.earned",
                "when": [],
                "offer": {
                    "kind": "gift",
                    "product": "medical-million",
                    "plan": "standard",
                    "redeem_with": "points",
                    "cost": 5,
                },
            },
            "rules[0] (r1).offer.product",
            "not giftable (R12)",
        ),
        (
            {"quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "Mars/Base"}},
            "rules[0] (r1).quiet_hours.timezone",
            "not a time zone",
        ),
    ],
)
def test_errors_name_the_field(catalog: Any, rule: dict[str, Any], field: str, words: str) -> None:
    problem = refusal(doc(**rule), catalog)
    assert problem.detail["field"] == field
    assert words in problem.message and field in problem.message


def test_whole_document_errors(catalog: Any) -> None:
    assert "not valid YAML" in refusal("rules: [\n", catalog).message
    twice = doc().replace("version: 1\n", "") + doc().split("rules:\n", 1)[1]
    assert "used twice" in refusal(twice, catalog).message
    assert "daily_cap" in refusal("daily_cap: 0\n", catalog).detail["field"]


def test_console_rule_keeps_its_code(catalog: Any) -> None:
    text = rules.rule_yaml(rules.load(CATALOG, catalog).rules[0])
    assert rules.parse_rule(text, catalog, code="hospital-medical").code == "hospital-medical"
    with pytest.raises(ValidationFailed) as caught:
        rules.parse_rule(text, catalog, code="other")
    assert caught.value.detail["field"] == "code"
    with pytest.raises(ValidationFailed):
        rules.parse_rule("- just a list", catalog, code="hospital-medical")


def test_conditions() -> None:
    def holds(text: str, event: str = "hospital.payment", **values: Any) -> bool:
        return rules.parse_condition(text, event).holds(values)

    assert holds("amount_fen >= 20000", amount_fen=20000)
    assert not holds("amount_fen > 20000", amount_fen=20000)
    assert holds("city in [上海, 北京]", city="北京") and not holds("city in [上海]", city="杭州")
    assert holds("city not in [上海]", city="杭州")
    assert holds("destination_country != CN", "flight.booked", destination_country="JP")
    assert not holds("destination_country != CN", "flight.booked", destination_country="CN")
    assert holds("trip_days <= 30", "flight.booked", trip_days=30)
    assert holds("department != 急诊") and not holds("department == 急诊")  # absent


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_numeric_conditions_agree_with_python(value: int, threshold: int) -> None:
    for op, expected in ((">=", value >= threshold), ("<", value < threshold)):
        condition = rules.parse_condition(f"amount_fen {op} {threshold}", "hospital.payment")
        assert condition.holds({"amount_fen": value}) is expected


@pytest.mark.parametrize(
    ("local", "until"),
    [
        ("2026-12-01T20:59", None),
        ("2026-12-01T21:00", "2026-12-02T08:00"),
        ("2026-12-01T23:59", "2026-12-02T08:00"),
        ("2026-12-02T00:10", "2026-12-02T08:00"),
        ("2026-12-02T07:59", "2026-12-02T08:00"),
        ("2026-12-02T08:00", None),
        ("2026-12-02T12:00", None),
    ],
)
def test_quiet_hours(local: str, until: str | None) -> None:
    moment = datetime.fromisoformat(local).replace(tzinfo=clock.SHANGHAI)
    found = quiet_until(moment, QUIET)
    expected = datetime.fromisoformat(until).replace(tzinfo=clock.SHANGHAI) if until else None
    assert found == expected
    day = rules.QuietHours(start=time(12), end=time(14))
    assert quiet_until(moment.replace(hour=13), day) == moment.replace(hour=14, minute=0)


def test_trip_term(catalog: Any) -> None:
    travel = next(p for p in catalog.products if p.code == "travel-medical")
    assert [trip_term(travel, d) for d in (1, 7, 8, 15, 30, 31)] == [
        "7d",
        "7d",
        "15d",
        "15d",
        "30d",
        None,
    ]


def test_catalog_check_validates_the_rule_files(tmp_path: Path) -> None:
    def check(folder: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "covernet.cli", "catalog", "check", str(folder)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    good = check(CATALOG)
    assert good.returncode == 0, good.stderr
    assert "5 offer rules" in good.stdout and "referral rewards" in good.stdout
    copy = tmp_path / "catalog"
    shutil.copytree(CATALOG, copy)
    offers = copy / "rules" / "offers.yaml"
    offers.write_text(
        offers.read_text("utf-8").replace("balance >= 500", "balanse >= 500"), "utf-8"
    )
    bad = check(copy)
    assert bad.returncode != 0
    assert "when[0]" in bad.stdout + bad.stderr and "balanse" in bad.stdout + bad.stderr
    shutil.copy(CATALOG / "rules" / "offers.yaml", offers)
    referrals = copy / "rules" / "referrals.yaml"
    referrals.write_text(
        referrals.read_text("utf-8").replace("kind: service_perk", "kind: cash_rebate"), "utf-8"
    )
    refused = check(copy)
    assert refused.returncode != 0 and "cash_rebate" in refused.stdout + refused.stderr


def test_message_keys_built_at_run_time_exist() -> None:
    from covernet.core import i18n
    from covernet.crm import consents
    from covernet.social import offer_pages

    keys = offer_pages.message_keys() + consents.message_keys()
    assert len(keys) > 20
    catalogs = i18n.catalogs()
    missing = [(lang, k) for lang in ("zh", "en") for k in keys if k not in catalogs[lang]]
    assert missing == []
