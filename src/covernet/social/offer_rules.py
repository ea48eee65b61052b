"""Scenario offer rules (``catalog/rules/offers.yaml``): which partner events make which
offer, for whom, how often and when.

A rule names an event type (one of :data:`EVENT_TYPES`, each with its own data model),
attribute conditions (``amount_fen >= 20000``, ``city in [上海, 北京]``,
``destination_country != CN``; the attribute must exist in that type's data, the
person's mobile may never be one), and the offer: ``quote`` (a product and plan whose
quote is pre-filled from the event) or ``gift`` (gifted cover redeemable with points or
steps, checked against R12 by the same checks as referral gifts and red envelopes).
Each rule has a cap per person (``cap: {max, days}``), an expiry, and may override the
file's quiet hours; the file holds the cap per person per day over all rules.

Validation happens on load (``covernet catalog check`` / ``load``, the console) and names
the bad field: ``rules[0] (hospital-medical).when[1]: …``.

**File and console versions.**  Ops may edit a rule in the console; each save is a new
``offer_rule_versions`` row (version, who, when, audited) holding the rule's YAML and the
digest of the file's text of that rule at the time.  The newest console version of a
rule is in force *while the file's rule still has that digest*: once someone changes the
rule in the file (a deploy), the file is newer and wins, and the console shows the saved
version as superseded.  A rule the file does not have can live in the console only.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from covernet.catalog.spec import Catalog
from covernet.core.config import get_settings
from covernet.core.errors import ValidationFailed
from covernet.social import rewards
from covernet.social.offer_models import OfferRuleVersion

FILE = Path("rules") / "offers.yaml"
CODE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
ABSENT = "absent"  # the digest of a rule the file does not have


# The events that make offers --------------------------------------------------------


class _Person(BaseModel):
    """The person is named by their mainland mobile (looked up by its blind index, never
    stored); what the partner knows of the insured may pre-fill the quote."""

    model_config = ConfigDict(extra="forbid")

    mobile: str = Field(min_length=11, max_length=16, description="the customer's mobile")
    birth_date: date | None = Field(default=None, description="pre-fills the quote")
    gender: Literal["M", "F"] | None = None
    region: str | None = Field(default=None, pattern=r"^\d{6}$", description="province code")


class HospitalPayment(_Person):
    """``hospital.payment``: the person paid at a hospital."""

    amount_fen: int = Field(ge=0, le=10**9)
    hospital: str = Field(min_length=1, max_length=100)
    city: str = Field(min_length=1, max_length=40)
    department: str | None = Field(default=None, max_length=40)


class OrderPlaced(_Person):
    """``order.placed``: the person placed an order (return-shipping cover)."""

    order_id: str = Field(min_length=1, max_length=100)
    amount_fen: int = Field(ge=0, le=10**9)
    category: str = Field(min_length=1, max_length=40)
    city: str | None = Field(default=None, max_length=40)


class FlightBooked(_Person):
    """``flight.booked``: the person booked a flight (trip dates pre-fill the term)."""

    booking_ref: str = Field(min_length=1, max_length=100)
    flight_no: str = Field(pattern=r"^[A-Z0-9]{2}[0-9]{1,4}[A-Z]?$")
    departure_date: date
    return_date: date | None = None
    destination_country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2")
    destination_city: str | None = Field(default=None, max_length=40)

    @model_validator(mode="after")
    def _in_order(self) -> FlightBooked:
        if self.return_date is not None and self.return_date < self.departure_date:
            raise ValueError("return_date is before departure_date")
        return self

    @property
    def trip_days(self) -> int:
        end = self.return_date or self.departure_date
        return (end - self.departure_date).days + 1


class StepsMilestone(_Person):
    """``steps.milestone``: the person walked ``steps`` in a day or a week."""

    steps: int = Field(ge=0, le=10**7)
    period: Literal["day", "week"] = "day"
    on: date


class PointsEarned(_Person):
    """``points.earned``: the person earned merchant points (``balance`` after it)."""

    merchant: str = Field(min_length=1, max_length=64)
    points: int = Field(ge=0, le=10**9)
    balance: int = Field(ge=0, le=10**10)


EVENT_TYPES: dict[str, type[_Person]] = {
    "hospital.payment": HospitalPayment,
    "order.placed": OrderPlaced,
    "flight.booked": FlightBooked,
    "steps.milestone": StepsMilestone,
    "points.earned": PointsEarned,
}
# Attributes worked out from the data, usable in conditions like the data's own.
DERIVED: dict[str, dict[str, type]] = {"flight.booked": {"trip_days": int}}
NOT_CONDITIONS = frozenset({"mobile", "birth_date", "gender"})  # personal: never a rule
REDEEM_EVENTS = {"points": "points.earned", "steps": "steps.milestone"}


def attributes(event_type: str, data: BaseModel) -> dict[str, Any]:
    """The event's attributes a condition may read (data plus derived ones)."""
    values = data.model_dump()
    for name in DERIVED.get(event_type, {}):
        values[name] = getattr(data, name)
    return values


def _attribute_types(event_type: str) -> dict[str, Any]:
    model = EVENT_TYPES[event_type]
    found: dict[str, Any] = {
        name: info.annotation
        for name, info in model.model_fields.items()
        if name not in NOT_CONDITIONS
    }
    found.update(DERIVED.get(event_type, {}))
    return found


# Conditions ---------------------------------------------------------------------------

_CONDITION = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(>=|<=|==|!=|>|<|not in|in)\s*(.+?)\s*$")
NUMERIC_OPS = frozenset({">=", "<=", ">", "<"})


@dataclass(frozen=True)
class Condition:
    attribute: str
    op: str
    value: Any

    def holds(self, values: dict[str, Any]) -> bool:
        actual = values.get(self.attribute)
        if actual is None:
            return self.op in ("!=", "not in")
        if self.op == "in":
            return str(actual) in self.value
        if self.op == "not in":
            return str(actual) not in self.value
        if self.op == "==":
            return str(actual) == str(self.value)
        if self.op == "!=":
            return str(actual) != str(self.value)
        number = int(actual)
        return bool(
            {
                ">=": number >= self.value,
                "<=": number <= self.value,
                ">": number > self.value,
                "<": number < self.value,
            }[self.op]
        )


def _is_number_type(annotation: Any) -> bool:
    return annotation is int or str(annotation) in ("int | None", "typing.Optional[int]")


def parse_condition(text: str, event_type: str) -> Condition:
    """``attribute op value`` against the event type's attributes, or a ValueError."""
    match = _CONDITION.match(text)
    if match is None:
        raise ValueError(
            f"'{text}' is not a condition: write 'attribute op value' with op one of "
            ">=, <=, >, <, ==, !=, in, not in"
        )
    name, op, raw = match.groups()
    known = _attribute_types(event_type)
    if name not in known:
        raise ValueError(
            f"no attribute '{name}' in {event_type} events (known: {', '.join(sorted(known))})"
        )
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ValueError(f"'{raw}' is not a value") from None
    if op in ("in", "not in"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"'{name} {op}' needs a list such as [上海, 北京]")
        return Condition(name, op, frozenset(str(v) for v in value))
    if op in NUMERIC_OPS:
        if not _is_number_type(known[name]):
            raise ValueError(f"'{name}' is not a number; '{op}' compares numbers")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"'{name} {op}' needs a whole number (amounts in fen)")
        return Condition(name, op, value)
    if isinstance(value, list | dict) or value is None:
        raise ValueError(f"'{name} {op}' needs a single value")
    return Condition(name, op, str(value))


# Rules --------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Text(_Model):
    zh: str = Field(min_length=1, max_length=120)
    en: str = Field(min_length=1, max_length=200)

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


class QuietHours(_Model):
    start: time = Field(description="from this local time (e.g. 21:00) …")
    end: time = Field(description="… until this one (e.g. 08:00), overnight if earlier")
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not a time zone") from None
        return value


class Cap(_Model):
    max: int = Field(default=1, ge=1, le=100, description="offers per person …")
    days: int = Field(default=7, ge=1, le=365, description="… within this many days")


class QuoteOffer(_Model):
    kind: Literal["quote"]
    product: str = Field(min_length=1, max_length=64)
    plan: str = Field(min_length=1, max_length=64)
    term: str | None = Field(
        default=None, max_length=64, description="a term code, or 'trip' (shortest covering)"
    )
    payment: str | None = Field(default=None, max_length=64)
    order_amount_from: str | None = Field(
        default=None, description="the event attribute giving a per-order product's amount"
    )


class GiftOffer(_Model):
    kind: Literal["gift"]
    product: str = Field(min_length=1, max_length=64)
    plan: str = Field(min_length=1, max_length=64)
    redeem_with: Literal["points", "steps"]
    cost: int = Field(ge=1, le=10**9, description="points spent, or steps needed")


OfferSpec = Annotated[QuoteOffer | GiftOffer, Field(discriminator="kind")]


class Rule(_Model):
    code: str = Field(pattern=CODE_PATTERN)
    title: Text
    event: str
    when: list[str] = Field(default_factory=list, max_length=20)
    offer: OfferSpec
    cap: Cap = Field(default_factory=Cap)
    expires_hours: int = Field(default=72, ge=1, le=24 * 30)
    quiet_hours: QuietHours | None = None
    enabled: bool = True

    @field_validator("event")
    @classmethod
    def _known_event(cls, value: str) -> str:
        if value not in EVENT_TYPES:
            raise ValueError(
                f"no offer event type '{value}' (known: {', '.join(sorted(EVENT_TYPES))})"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        for i, text in enumerate(self.when):
            try:
                parse_condition(text, self.event)
            except ValueError as exc:
                raise ValueError(f"when[{i}]: {exc}") from None
        offer = self.offer
        if isinstance(offer, GiftOffer) and REDEEM_EVENTS[offer.redeem_with] != self.event:
            raise ValueError(
                f"offer.redeem_with: {offer.redeem_with} are redeemed from "
                f"{REDEEM_EVENTS[offer.redeem_with]} events, not {self.event}"
            )
        if isinstance(offer, QuoteOffer):
            if offer.term == "trip" and self.event != "flight.booked":
                raise ValueError("offer.term: 'trip' needs flight.booked events (trip dates)")
            source = offer.order_amount_from
            if source is not None and source not in _attribute_types(self.event):
                raise ValueError(
                    f"offer.order_amount_from: no attribute '{source}' in {self.event}"
                )
        return self

    def conditions(self) -> list[Condition]:
        return [parse_condition(t, self.event) for t in self.when]

    def matches(self, values: dict[str, Any]) -> bool:
        return all(c.holds(values) for c in self.conditions())


class OffersConfig(_Model):
    version: Literal[1] = 1
    daily_cap: int = Field(default=3, ge=1, le=100, description="offers per person per day")
    quiet_hours: QuietHours = Field(default_factory=lambda: QuietHours(start=time(21), end=time(8)))
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> OffersConfig:
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.code in seen:
                raise ValueError(f"rules[{i}].code: '{rule.code}' is used twice")
            seen.add(rule.code)
        return self


# Validation with named fields --------------------------------------------------------


_FIELD_FIRST = re.compile(r"^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*): (.+)$", re.S)


def _where(loc: tuple[Any, ...], data: Any) -> str:
    """``rules[0] (hospital-medical).offer.plan`` for pydantic's location."""
    out, node = "", data
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            code = item.get("code") if isinstance(item, dict) and out == "rules" else None
            out += f"[{part}]" + (f" ({code})" if code else "")
            node = item
        elif isinstance(node, dict) and part in ("quote", "gift") and node.get("kind") == part:
            continue  # the union's tag, not a field
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _split(where: str, message: str) -> tuple[str, str]:
    """A validator's message that starts with a field (``when[1]: …``) extends ``where``."""
    match = _FIELD_FIRST.match(message)
    if match is None:
        return where, message
    return (f"{where}.{match[1]}" if where else match[1]), match[2]


def _refuse(source: str, where: str, message: str) -> ValidationFailed:
    text = f"{where}: {message}" if where else message
    return ValidationFailed(
        f"{source}: {text}", code="bad_offer_rules", detail={"file": source, "field": where}
    )


def _validated(model: type[BaseModel], data: Any, source: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        where, message = _split(_where(tuple(first["loc"]), data), message)
        raise _refuse(source, where, message) from None


def _yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise _refuse(source, where, f"not valid YAML: {problem}") from None


def check_products(rules: list[Rule], catalog: Catalog, source: str) -> None:
    """Each offer's product, plan and term exist; gifts pass R12 as referral gifts do."""
    products = {p.code: p for p in catalog.products}
    for i, rule in enumerate(rules):
        where = f"rules[{i}] ({rule.code}).offer"
        product = products.get(rule.offer.product)
        if product is None:
            raise _refuse(source, f"{where}.product", f"no product '{rule.offer.product}'")
        if rule.offer.plan not in {p.code for p in product.plans}:
            raise _refuse(
                source, f"{where}.plan", f"{product.code} has no plan '{rule.offer.plan}'"
            )
        offer = rule.offer
        if isinstance(offer, QuoteOffer):
            terms = {t.code for t in product.terms_options}
            if offer.term not in (None, "trip") and offer.term not in terms:
                raise _refuse(source, f"{where}.term", f"{product.code} has no term '{offer.term}'")
            payments = {p.code for p in product.payment_options}
            if offer.payment is not None and offer.payment not in payments:
                raise _refuse(
                    source, f"{where}.payment", f"{product.code} has no payment '{offer.payment}'"
                )
            continue
        gift = {"kind": "gift_cover", "code": rule.code, "title": rule.title.zh}
        try:
            rewards.parse(
                {"rewards": [{**gift, "product": offer.product, "plan": offer.plan}]}, catalog
            )
        except ValidationFailed as exc:
            raise _refuse(
                source, f"{where}.product", exc.message.removeprefix("rewards[0]: ")
            ) from None


def parse(text: str, catalog: Catalog | None, *, source: str = str(FILE)) -> OffersConfig:
    """Validate an offers document (and, given a catalog, its products and gifts)."""
    data = _yaml(text, source)
    config: OffersConfig = _validated(OffersConfig, data if data is not None else {}, source)
    if catalog is not None:
        check_products(config.rules, catalog, source)
    return config


def parse_rule(text: str, catalog: Catalog | None, *, code: str, source: str = "rule") -> Rule:
    """One rule's YAML as edited in the console; it must keep its code."""
    data = _yaml(text, source)
    if not isinstance(data, dict):
        raise _refuse(source, "", "a rule is a mapping with code, title, event, when and offer")
    rule: Rule = _validated(Rule, data, source)
    if rule.code != code:
        raise _refuse(source, "code", f"the rule's code must stay '{code}'")
    if catalog is not None:
        check_products([rule], catalog, source)
    return rule


def load(directory: Path, catalog: Catalog | None = None) -> OffersConfig:
    """The file's rules (none without a file), validated against ``catalog``."""
    path = Path(directory) / FILE
    if not path.is_file():
        return OffersConfig()
    return parse(path.read_text(encoding="utf-8"), catalog, source=str(path))


@lru_cache(maxsize=4)
def _file_config(path: str, mtime: float) -> OffersConfig:
    return parse(Path(path).read_text(encoding="utf-8"), None, source=path)


def file_config() -> OffersConfig:
    """The file's rules as deployed (re-read when the file changes)."""
    path = Path(get_settings().catalog_dir) / FILE
    if not path.is_file():
        return OffersConfig()
    return _file_config(str(path), path.stat().st_mtime)


def digest(rule: Rule | None) -> str:
    if rule is None:
        return ABSENT
    canonical = json.dumps(rule.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def rule_yaml(rule: Rule) -> str:
    data = rule.model_dump(mode="json", exclude_defaults=True)
    data = {
        "code": rule.code,
        "title": data.pop("title"),
        **{k: v for k, v in data.items() if k != "code"},
    }
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


# The rules in force ------------------------------------------------------------------


@dataclass(frozen=True)
class Effective:
    rule: Rule
    version: str  # file:<digest12> or db:<n>
    source: Literal["file", "console"]
    superseded: OfferRuleVersion | None = None  # a console version the file overtook


def latest_versions(db: Session) -> dict[str, OfferRuleVersion]:
    newest = (
        select(OfferRuleVersion.rule_code, func.max(OfferRuleVersion.version).label("v"))
        .group_by(OfferRuleVersion.rule_code)
        .subquery()
    )
    rows = db.scalars(
        select(OfferRuleVersion).join(
            newest,
            (OfferRuleVersion.rule_code == newest.c.rule_code)
            & (OfferRuleVersion.version == newest.c.v),
        )
    )
    return {r.rule_code: r for r in rows}


def effective(db: Session, config: OffersConfig | None = None) -> list[Effective]:
    """Every rule in force: the file's, each replaced by its newest console version
    while the file's rule is still the one that version was edited from."""
    config = config if config is not None else file_config()
    saved = latest_versions(db)
    out: list[Effective] = []
    for rule in config.rules:
        row = saved.pop(rule.code, None)
        if row is not None and row.file_digest == digest(rule):
            out.append(Effective(_stored_rule(row), f"db:{row.version}", "console"))
        else:
            out.append(Effective(rule, f"file:{digest(rule)[:12]}", "file", superseded=row))
    for row in saved.values():  # console-only rules (the file has none of that code)
        if row.file_digest == ABSENT:
            out.append(Effective(_stored_rule(row), f"db:{row.version}", "console"))
    return out


def _stored_rule(row: OfferRuleVersion) -> Rule:
    return _stored_rule_cached(row.rule_code, row.version, row.yaml_text)


@lru_cache(maxsize=256)
def _stored_rule_cached(code: str, version: int, text: str) -> Rule:
    return parse_rule(text, None, code=code, source=f"console {code} v{version}")


def file_rule(code: str, config: OffersConfig | None = None) -> Rule | None:
    config = config if config is not None else file_config()
    return next((r for r in config.rules if r.code == code), None)


def save_version(
    db: Session, code: str, text: str, *, by: str, catalog: Catalog
) -> OfferRuleVersion:
    """Validate one rule's YAML as the file is validated and store it as the rule's next
    version (the caller audits it).  The rule row of the same code is locked by the
    unique (code, version) index: two saves at once cannot take one number."""
    parse_rule(text, catalog, code=code, source=f"rule {code}")
    if not re.fullmatch(CODE_PATTERN, code):
        raise _refuse("rule", "code", f"'{code}' is not a rule code")
    current = db.scalar(
        select(func.max(OfferRuleVersion.version)).where(OfferRuleVersion.rule_code == code)
    )
    row = OfferRuleVersion(
        rule_code=code,
        version=(current or 0) + 1,
        yaml_text=text,
        file_digest=digest(file_rule(code)),
        created_by=by,
    )
    db.add(row)
    db.flush()
    return row


def versions_of(db: Session, code: str) -> list[OfferRuleVersion]:
    return list(
        db.scalars(
            select(OfferRuleVersion)
            .where(OfferRuleVersion.rule_code == code)
            .order_by(OfferRuleVersion.version.desc())
        )
    )


def quiet_hours_of(rule: Rule, config: OffersConfig | None = None) -> QuietHours:
    config = config if config is not None else file_config()
    return rule.quiet_hours or config.quiet_hours
