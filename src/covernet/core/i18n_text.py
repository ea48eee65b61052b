"""Bilingual text values used by the catalog and pages."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"


class I18nText(BaseModel):
    """A text in Simplified Chinese (required) and English (falls back to Chinese).

    YAML may give a plain string, taken as Chinese.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    zh: str
    en: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_plain(cls, value: object) -> object:
        if isinstance(value, str):
            return {"zh": value}
        return value

    def get(self, lang: str) -> str:
        if lang == "en" and self.en:
            return self.en
        return self.zh

    def __str__(self) -> str:
        return self.zh
