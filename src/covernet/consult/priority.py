"""The desk's rules (``catalog/rules/desk.yaml``) and the pure questions asked of them:
how urgent a message is, whether it is a complaint, which product line it is about.

No database: tested with plain strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from covernet.catalog.spec import Line
from covernet.consult.models import PRIORITY_RANK, Kind, Priority
from covernet.core.config import get_settings
from covernet.core.errors import ValidationFailed


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PriorityRule(_Model):
    code: str
    priority: Priority
    kind: Kind | None = None
    keywords: list[str] = Field(default_factory=list)
    all_of: list[list[str]] = Field(default_factory=list)


class BusinessHours(_Model):
    days: list[int] = Field(min_length=1)
    start: str = Field(pattern=r"^\d\d:\d\d$")
    end: str = Field(pattern=r"^\d\d:\d\d$")


class Sla(_Model):
    first_response_minutes: int = Field(ge=1)
    next_response_minutes: int = Field(ge=1)
    resolution_hours: int = Field(ge=1)
    near_breach_ratio: float = Field(gt=0, lt=1)
    business_hours: BusinessHours


class DeskRules(_Model):
    priority_rules: list[PriorityRule]
    line_keywords: dict[Line, list[str]]
    complaint_days: int = Field(ge=1, le=30)
    sla: Sla
    max_snooze_days: int = Field(ge=1, le=90)


def load(path: Path | str) -> DeskRules:
    try:
        return DeskRules.model_validate(yaml.safe_load(Path(path).read_text("utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ValidationFailed(f"{path}: {exc}", code="bad_desk_rules") from exc


@lru_cache(maxsize=4)
def _cached(path: str, mtime: float) -> DeskRules:
    return load(path)


def current() -> DeskRules:
    path = get_settings().catalog_dir / "rules" / "desk.yaml"
    return _cached(str(path), path.stat().st_mtime)


@dataclass(frozen=True)
class Verdict:
    priority: Priority
    kind: Kind | None  # complaint when a complaint rule matched, else None
    reason: str | None  # the code of the rule that set the priority


def _has(text: str, words: list[str]) -> bool:
    return any(word.lower() in text for word in words)


def _matches(rule: PriorityRule, text: str) -> bool:
    if rule.keywords and _has(text, rule.keywords):
        return True
    return bool(rule.all_of) and all(_has(text, group) for group in rule.all_of)


def classify(text: str, rules: DeskRules, current: Priority = Priority.normal) -> Verdict:
    """The priority ``text`` calls for: the most urgent of ``current`` and every rule
    that matches (priorities are only ever raised here)."""
    lowered = text.lower()
    best, reason, kind = current, None, None
    for rule in rules.priority_rules:
        if not _matches(rule, lowered):
            continue
        if rule.kind is Kind.complaint:
            kind = Kind.complaint
        if PRIORITY_RANK[rule.priority] < PRIORITY_RANK[best]:
            best, reason = rule.priority, rule.code
    return Verdict(best, kind, reason)


def detect_line(text: str, rules: DeskRules) -> Line | None:
    lowered = text.lower()
    for line, words in rules.line_keywords.items():
        if _has(lowered, words):
            return line
    return None


def higher(a: Priority, b: Priority) -> Priority:
    return a if PRIORITY_RANK[a] <= PRIORITY_RANK[b] else b
