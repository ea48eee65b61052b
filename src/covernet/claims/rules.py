"""The claims configuration (``catalog/rules/claims.yaml``): stages, allowed transitions,
documents per kind of claim, the four-eyes limit and the statutory clocks (R21).

Pure: loading and validating the file, and the questions asked of it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from covernet.catalog.spec import Line
from covernet.core.config import get_settings
from covernet.core.errors import ValidationFailed


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Stage(_Model):
    code: str
    zh: str
    en: str
    note_zh: str
    note_en: str


class Document(_Model):
    code: str
    zh: str
    en: str


class Documents(_Model):
    common: list[Document]
    by_line: dict[Line, list[Document]] = Field(default_factory=dict)
    by_coverage: dict[str, list[Document]] = Field(default_factory=dict)


class Clocks(_Model):
    decision_days: int = Field(ge=1, le=30)
    payment_days: int = Field(ge=1, le=10)
    denial_notice_days: int = Field(ge=1, le=3)
    advance_payment_days: int = Field(ge=1, le=60)
    near_breach_days: int = Field(ge=0, le=10)


REQUIRED_STAGES = (
    "reported",
    "accepted",
    "documents",
    "investigating",
    "assessed",
    "approved",
    "declined",
    "paid",
    "closed",
    "withdrawn",
)


class ClaimRules(_Model):
    version: int = Field(ge=1)
    four_eyes_above_fen: int = Field(ge=0)
    clocks: Clocks
    stages: list[Stage]
    transitions: dict[str, list[str]]
    documents: Documents

    @model_validator(mode="after")
    def _consistent(self) -> ClaimRules:
        codes = [s.code for s in self.stages]
        missing = [c for c in REQUIRED_STAGES if c not in codes]
        if missing:
            raise ValueError(f"stages lack {missing}")
        for source, targets in self.transitions.items():
            unknown = [t for t in [source, *targets] if t not in codes]
            if unknown:
                raise ValueError(f"transitions from {source} name unknown stages {unknown}")
        return self

    def stage(self, code: str) -> Stage:
        return next(s for s in self.stages if s.code == code)

    def allows(self, source: str, target: str) -> bool:
        return target in self.transitions.get(source, [])

    def documents_for(self, line: Line, coverage_code: str) -> list[Document]:
        """Every document the claim needs, listed once, all at once (R21)."""
        docs = [
            *self.documents.common,
            *self.documents.by_line.get(line, []),
            *self.documents.by_coverage.get(coverage_code, []),
        ]
        seen: dict[str, Document] = {}
        for doc in docs:
            seen.setdefault(doc.code, doc)
        return list(seen.values())


def load(path: Path | str) -> ClaimRules:
    try:
        return ClaimRules.model_validate(yaml.safe_load(Path(path).read_text("utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ValidationFailed(f"{path}: {exc}", code="bad_claim_rules") from exc


@lru_cache(maxsize=4)
def _cached(path: str, mtime: float) -> ClaimRules:
    return load(path)


def current() -> ClaimRules:
    path = get_settings().catalog_dir / "rules" / "claims.yaml"
    return _cached(str(path), path.stat().st_mtime)


# Statutory clocks (R21) ------------------------------------------------------------------


def add_days(moment: datetime, days: int) -> date:
    """The last day of a period of ``days`` starting the day after ``moment`` (local)."""
    from covernet.core import clock

    return clock.to_local(moment).date() + timedelta(days=days)
