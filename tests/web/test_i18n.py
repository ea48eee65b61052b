"""Message catalogs, language negotiation and the formatting helpers."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import get_args

import pytest
from starlette.requests import Request

from covernet.catalog.spec import Frequency, Line
from covernet.compliance import live
from covernet.compliance.models import LiveStatus
from covernet.consult import monitors as desk_monitors
from covernet.consult import pages as desk_pages
from covernet.consult.models import Availability, Channel, Conversation, Kind, Priority, State
from covernet.core import i18n
from covernet.crm import pages as crm_pages
from covernet.crm import service as crm
from covernet.crm.consent_models import Purpose
from covernet.crm.models import PoolSource
from covernet.identity.models import Role
from covernet.payments.models import PaymentStatus, RefundStatus
from covernet.policies import purchase, verification
from covernet.policies.models import PolicyStatus
from covernet.social.models import EnvelopeStatus, ShareStatus
from covernet.web import render, views

WEB = Path(render.__file__).parent
TEMPLATE_KEY = re.compile(r"""\b_\(\s*["']([^"']+)["']\s*[,)]""")
TEMPLATE_PREFIX = re.compile(r"""\b_\(\s*["']([^"']+)["']\s*~""")
PYTHON_KEY = re.compile(r"""\btranslate(?:_or)?\(\s*["']([^"']+)["']""")


def _keys_used() -> dict[str, str]:
    used: dict[str, str] = {}
    for path in sorted((WEB / "templates").rglob("*.html")):
        for key in TEMPLATE_KEY.findall(path.read_text(encoding="utf-8")):
            used.setdefault(key, path.name)
    for path in sorted(WEB.glob("*.py")):
        for key in PYTHON_KEY.findall(path.read_text(encoding="utf-8")):
            used.setdefault(key, path.name)
    return used


def test_both_catalogs_have_exactly_the_same_keys() -> None:
    zh, en = i18n.catalogs()["zh"], i18n.catalogs()["en"]
    assert sorted(set(zh) - set(en)) == []
    assert sorted(set(en) - set(zh)) == []
    assert all(text.strip() for text in [*zh.values(), *en.values()])


def test_translations_expect_the_same_placeholders() -> None:
    zh, en = i18n.catalogs()["zh"], i18n.catalogs()["en"]
    different = {
        key: (i18n.placeholders(zh[key]), i18n.placeholders(en[key]))
        for key in zh
        if i18n.placeholders(zh[key]) != i18n.placeholders(en[key])
    }
    assert different == {}


def test_every_key_used_by_templates_and_pages_exists() -> None:
    used = _keys_used()
    assert len(used) > 100  # the scan found the templates
    missing = {key: where for key, where in used.items() if not i18n.has_message(key)}
    assert missing == {}


def test_keys_built_at_run_time_exist() -> None:
    prefixes = {
        prefix
        for path in (WEB / "templates").rglob("*.html")
        for prefix in TEMPLATE_PREFIX.findall(path.read_text(encoding="utf-8"))
    }
    assert prefixes == {  # each is checked below
        "occupation.",
        "role.",
        "licenses.status.",
        "check.kind.",
        "check.verdict.",
        "check.severity.",
        "content.status.",
        "monitors.status.",  # the monitors' own keys: tests/compliance/test_monitors.py
        "monitors.state.",
        "live.status.",
        "live.outcome.",
        "buy.step.",  # the purchase pages: checked below
        "buy.relationship.",
        "buy.beneficiary.",
        "buy.suitability.",
        "application.progress.",
        "application.reason.",
        "policy.status.",
        "verify.status.",  # the public verification page
        "policy.refund_status.",
        "policy.surrender_lead.",
        "envelope.status.",  # the red envelope page
        "envelope.grab_status.",
        "buy.confirm.",
        "crm.source.",  # the customer 360 page
        "crm.",  # the unmasked field's name
        "crm.unmask.reason.",
        "crm.tag.",
        "crm.line.",
        "crm.payment_status.",
        "crm.refund_status.",
        "consent.purpose.",
        "desk_reports.channel.",  # also the desk reports page
        "desk.availability.",  # the desk's inbox and conversation pages
        "desk.state.",
        "desk.priority.",
        "desk.kind.",
        "desk.channel.",
        "desk.system.",
        "desk.sla.",
        "desk.sla_state.",
    }
    keys = [f"price.from.{f.value}" for f in Frequency]
    keys += [f"freq.unit.{f.value}" for f in Frequency if f is not Frequency.single]
    keys += [f"role.{r.value}" for r in Role]
    keys += [f"licenses.status.{s}" for s in ("active", "expired", "suspended", "revoked")]
    keys += [
        f"check.kind.{k}"
        for k in ("moments", "post", "group_message", "live_script", "canned_reply")
    ]
    keys += [f"check.verdict.{v}" for v in ("pass", "review", "fail")]
    keys += [f"check.severity.{v}" for v in ("fail", "review")]
    keys += [f"content.status.{v}" for v in ("pending_review", "approved", "rejected", "published")]
    keys += [f"live.status.{s.value}" for s in LiveStatus]
    keys += [f"live.outcome.{o}" for o in get_args(live.Outcome)]
    keys += [f"live.done.{a}" for a in ("start", "end", "transcript", "review")]
    keys += [f"occupation.{n}" for n in views.ALL_OCCUPATION_CLASSES]
    keys += [f"buy.step.{s}" for s in purchase.STEP_CODES]
    keys += [f"buy.relationship.{r}" for r in purchase.RELATIONSHIPS]
    keys += [f"buy.beneficiary.{r}" for r in purchase.BENEFICIARY_RELATIONSHIPS]
    keys += [f"buy.suitability.{w}" for w in purchase.SUITABILITY_WARNINGS]
    keys += [f"application.progress.{p}" for p in purchase.PROGRESS]
    keys += [
        f"application.reason.{r}"
        for r in (*purchase.DECLINE_REASONS, *purchase.REFER_REASONS, "other")
    ]
    keys += [f"policy.status.{s.value}" for s in PolicyStatus] + ["policy.status.pending"]
    keys += [f"verify.status.{s}" for s in verification.STATUSES]
    keys += [f"policy.refund_status.{s}" for s in ("requested", "succeeded", "failed")]
    keys += [
        f"policy.surrender_lead.{b}" for b in ("cash_value", "unearned_premium", "not_started")
    ]
    keys += [f"policy.done.{a}" for a in ("cancel", "surrender", "renew")]
    keys += [f"envelope.status.{s.value}" for s in EnvelopeStatus]
    keys += [f"envelope.grab_status.{s.value}" for s in ShareStatus]
    keys += [
        f"buy.confirm.{c}"
        for c in (
            "terms",
            "exclusions",
            "disclosures",
            "health_notice",
            "privacy",
            "sensitive_data",
        )
    ]
    keys += [f"crm.source.{s.value}" for s in PoolSource]
    keys += [f"crm.{f}" for f in crm.UNMASK_FIELDS]
    keys += [f"crm.unmask.reason.{r}" for r in crm.UNMASK_REASONS]
    keys += [f"crm.tag.{t}" for t in crm.TAG_VOCABULARY]  # a free tag is shown as typed
    keys += [f"crm.line.{line.value}" for line in Line]
    keys += [f"crm.payment_status.{s.value}" for s in PaymentStatus]
    keys += [f"crm.refund_status.{s.value}" for s in RefundStatus]
    keys += [f"consent.purpose.{p.value}" for p in Purpose]
    # Both pages translate only the channels they are given (crm.pages.CHANNELS).
    keys += [f"desk_reports.channel.{c}" for c in crm_pages.CHANNELS]
    keys += [f"desk.availability.{a.value}" for a in Availability]
    keys += [f"desk.state.{s}" for s in {*desk_pages.STATES, *State}]
    keys += [f"desk.priority.{p.value}" for p in Priority]
    keys += [f"desk.kind.{k.value}" for k in Kind]
    keys += [f"desk.channel.{c.value}" for c in Channel]
    # desk_conversation.html: only these system messages' purposes are translated.
    keys += [f"desk.system.{p}" for p in ("handoff", "transfer", "merge")]
    keys += [f"desk.sla.{c.name}" for c in _every_desk_clock()]
    keys += [f"desk.sla_state.{s}" for s in get_args(desk_monitors.ClockState)]
    keys += [f"error.{code}" for code in views.QUOTE_ERROR_CODES]
    keys += [f"error.title.{status}" for status in (400, 401, 403, 404, 409, 422, 429, 500)]
    keys += ["gender.M", "gender.F", "error.title.default"]
    assert [k for k in keys if not i18n.has_message(k)] == []


def _every_desk_clock() -> list[desk_monitors.SlaClock]:
    """The clocks of an open complaint answered once and waiting for the next answer:
    every clock the desk shows (first and next response, resolution, complaint)."""
    created = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    conv = Conversation(
        kind=Kind.complaint.value,
        state=State.open.value,
        created_at=created,
        first_response_at=created + timedelta(minutes=5),
        last_customer_message_at=created + timedelta(minutes=10),
        complaint_due_at=created + timedelta(days=15),
    )
    found = desk_monitors.clocks_of(conv, created + timedelta(minutes=5), now=created)
    assert len({c.name for c in found}) == 4
    return found


def test_translate_fills_placeholders_and_falls_back_to_the_key() -> None:
    assert i18n.translate("price.from.monthly", "zh", amount="¥5.00") == "¥5.00/月起"
    assert i18n.translate("price.from.monthly", "en", amount="¥5.00") == "from ¥5.00/month"
    assert i18n.translate("price.from.monthly", "fr", amount="¥5.00") == "¥5.00/月起"
    assert i18n.translate("no.such.key", "en") == "no.such.key"
    with pytest.raises(KeyError):
        i18n.translate("price.from.monthly", "zh", price="¥5.00")


def test_translate_or_falls_back_to_the_given_text() -> None:
    assert i18n.translate_or("error.mobile_taken", "en", "x").startswith("This mobile")
    assert i18n.translate_or("error.unheard_of", "zh", "the service said so") == (
        "the service said so"
    )
    # A message whose values are missing is not shown half-filled.
    assert i18n.translate_or("error.age_out_of_range", "zh", "fallback", {"age": 70}) == "fallback"


def _request(query: str = "", cookie: str | None = None) -> Request:
    headers = [(b"cookie", cookie.encode())] if cookie else []
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "query_string": query.encode(),
            "headers": headers,
        }
    )


@pytest.mark.parametrize(
    ("query", "cookie", "expected"),
    [
        ("", None, "zh"),
        ("lang=en", None, "en"),
        ("lang=EN", None, "en"),
        ("lang=zh", "covernet_lang=en", "zh"),
        ("", "covernet_lang=en", "en"),
        ("lang=fr", "covernet_lang=en", "en"),
        ("lang=fr", None, "zh"),
        ("", "covernet_lang=xx", "zh"),
    ],
)
def test_negotiate_lang(query: str, cookie: str | None, expected: str) -> None:
    assert i18n.negotiate_lang(_request(query, cookie)) == expected


def test_dates_are_shown_in_beijing_time() -> None:
    late_utc = datetime(2025, 1, 1, 20, 5, tzinfo=UTC)  # 04:05 on 2 January in Beijing
    assert i18n.format_date(late_utc, "zh") == "2025年1月2日"
    assert i18n.format_date(date(2025, 1, 2), "en") == "2 Jan 2025"
    assert i18n.format_datetime(late_utc, "zh") == "2025年1月2日 04:05"
    assert i18n.format_datetime(late_utc, "en") == "2 Jan 2025, 04:05"
    assert i18n.format_date(None, "zh") == ""


def test_template_helpers_use_the_page_language() -> None:
    template = render.env.from_string(
        "{{ _('quote.premium') }} {{ 30000000|money_compact }} {{ 500|money }} {{ d|fdate }}"
    )
    day = date(2025, 3, 1)
    assert template.render(lang="zh", d=day) == "保费 30万 ¥5.00 2025年3月1日"
    assert template.render(lang="en", d=day) == "Premium ¥300k ¥5.00 1 Mar 2025"


def test_fdate_reads_json_shaped_values() -> None:
    """Views shaped for the API carry ISO strings (customer 360's consents); the filter
    shows them like dates, in Asia/Shanghai."""
    from jinja2 import Environment

    env = Environment(autoescape=True)
    i18n.install(env)
    page = env.from_string("{{ a|fdate }} / {{ b|fdate }} / {{ c|fdate }}")
    assert page.render(a="2026-11-30T17:00:00+00:00", b="2026-12-02", c=None) == (
        "2026年12月1日 / 2026年12月2日 / "
    )
