"""Page texts in Simplified Chinese (default) and English.

Messages live in ``core/locales/zh.yaml`` and ``core/locales/en.yaml``: one flat
mapping of keys such as ``home.title`` to texts with optional ``{name}``
placeholders.  Both files have exactly the same keys (a test checks it).

* :func:`translate` looks a key up; a missing English text falls back to Chinese and
  a missing key to the key itself, so a page never fails over a text.
* :func:`negotiate_lang` picks the page language: the ``lang`` query parameter, then
  the ``covernet_lang`` cookie, then Chinese.
* :func:`install` adds the template helpers to a Jinja environment: ``_()``, the
  filters ``tr`` (bilingual catalog texts), ``money``, ``money_compact``, ``fdate``
  and ``fdatetime`` (dates and times shown in Asia/Shanghai).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from starlette.requests import HTTPConnection

from covernet.core import clock
from covernet.core.i18n_text import I18nText
from covernet.core.money import format_fen, format_fen_compact

Lang = Literal["zh", "en"]
LANGS: Final[tuple[Lang, ...]] = ("zh", "en")
DEFAULT_LANG: Final[Lang] = "zh"
LANG_COOKIE: Final = "covernet_lang"
LANG_PARAM: Final = "lang"
HTML_LANG: Final[dict[Lang, str]] = {"zh": "zh-CN", "en": "en"}
LANG_LABELS: Final[dict[Lang, str]] = {"zh": "中文", "en": "EN"}
LOCALES = Path(__file__).parent / "locales"

_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_formatter = string.Formatter()


class CatalogFileError(ValueError):
    """A message catalog file is not a flat mapping of keys to texts."""


def _read_catalog(path: Path) -> dict[str, str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise CatalogFileError(f"{path}: expected a mapping of message keys to texts")
    out: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise CatalogFileError(f"{path}: {key!r} must map a text key to a text")
        out[key] = value
    return out


@lru_cache(maxsize=1)
def catalogs() -> dict[Lang, dict[str, str]]:
    """Every message catalog, read once per process."""
    return {lang: _read_catalog(LOCALES / f"{lang}.yaml") for lang in LANGS}


def as_lang(value: str | None) -> Lang | None:
    """``value`` as a supported language, or None."""
    if value is None:
        return None
    value = value.strip().lower()
    for lang in LANGS:
        if value == lang:
            return lang
    return None


def has_message(key: str) -> bool:
    return key in catalogs()[DEFAULT_LANG]


def placeholders(text: str) -> set[str]:
    """The ``{name}`` fields a message expects."""
    return {field for _, field, _, _ in _formatter.parse(text) if field}


def translate(key: str, lang: str = DEFAULT_LANG, /, **params: Any) -> str:
    """The message ``key`` in ``lang`` with ``params`` filled in.

    Raises KeyError when a placeholder has no value (a programming error).
    """
    chosen = as_lang(lang) or DEFAULT_LANG
    found = catalogs()[chosen].get(key) or catalogs()[DEFAULT_LANG].get(key)
    if found is None:
        return key
    return found.format_map(params) if params else found


def translate_or(
    key: str, lang: str, fallback: str, params: Mapping[str, Any] | None = None
) -> str:
    """The message ``key`` if there is one and ``params`` fill it, else ``fallback``."""
    if not has_message(key):
        return fallback
    try:
        return translate(key, lang, **dict(params or {}))
    except (KeyError, IndexError, ValueError):
        return fallback


def negotiate_lang(request: HTTPConnection) -> Lang:
    """The page language: ``?lang=``, then the ``covernet_lang`` cookie, then Chinese."""
    return (
        as_lang(request.query_params.get(LANG_PARAM))
        or as_lang(request.cookies.get(LANG_COOKIE))
        or DEFAULT_LANG
    )


def requested_lang(request: HTTPConnection) -> Lang | None:
    """The language asked for explicitly in the query string (to be remembered)."""
    return as_lang(request.query_params.get(LANG_PARAM))


# Formatting --------------------------------------------------------------------------


def format_date(value: date | datetime | None, lang: str = DEFAULT_LANG) -> str:
    """``2025年1月2日`` / ``2 Jan 2025``; datetimes are taken in Asia/Shanghai."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = clock.to_local(value).date()
    if lang == "en":
        return f"{value.day} {_EN_MONTHS[value.month - 1]} {value.year}"
    return f"{value.year}年{value.month}月{value.day}日"


def format_datetime(value: datetime | None, lang: str = DEFAULT_LANG) -> str:
    """Date and minute in Asia/Shanghai: ``2025年1月2日 14:30`` / ``2 Jan 2025, 14:30``."""
    if value is None:
        return ""
    local = clock.to_local(value)
    day = format_date(local.date(), lang)
    separator = ", " if lang == "en" else " "
    return f"{day}{separator}{local:%H:%M}"


def text_in(value: I18nText | Mapping[str, str | None] | str | None, lang: str) -> str:
    """A bilingual catalog text in ``lang`` (English falls back to Chinese)."""
    if value is None:
        return ""
    if isinstance(value, I18nText):
        return value.get(lang)
    if isinstance(value, str):
        return value
    return value.get(lang) or value.get(DEFAULT_LANG) or ""


# Jinja -------------------------------------------------------------------------------


def _lang(ctx: Context) -> str:
    lang = ctx.get("lang")
    return lang if isinstance(lang, str) else DEFAULT_LANG


@pass_context
def _gettext(ctx: Context, key: str, **params: Any) -> str:
    return translate(key, _lang(ctx), **params)


@pass_context
def _tr(ctx: Context, value: I18nText | Mapping[str, str | None] | str | None) -> str:
    return text_in(value, _lang(ctx))


@pass_context
def _money(ctx: Context, fen: int) -> str:
    return format_fen(fen, lang=_lang(ctx))


@pass_context
def _money_compact(ctx: Context, fen: int) -> str:
    return format_fen_compact(fen, lang=_lang(ctx))


@pass_context
def _fdate(ctx: Context, value: date | datetime | str | None) -> str:
    if isinstance(value, str):  # a JSON-shaped view (ISO 8601), as the API answers it
        value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    return format_date(value, _lang(ctx))


@pass_context
def _fdatetime(ctx: Context, value: datetime | None) -> str:
    return format_datetime(value, _lang(ctx))


def install(env: Environment) -> None:
    """Add ``_()`` and the formatting filters; templates need ``lang`` in their context."""
    env.globals["_"] = _gettext
    env.filters["tr"] = _tr
    env.filters["money"] = _money
    env.filters["money_compact"] = _money_compact
    env.filters["fdate"] = _fdate
    env.filters["fdatetime"] = _fdatetime
