"""Server-rendered pages: one Jinja environment, language negotiation, error pages.

Every page gets ``lang``, ``_()`` and the formatting filters of
:mod:`covernet.core.i18n`, the caller (``principal``, when an access dependency
has run), the links of the language toggle and ``static_url()``.  ``?lang=`` is
remembered in the ``covernet_lang`` cookie.  Pages send a strict Content Security
Policy: no inline scripts or styles, nothing from another origin.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from covernet.core import i18n
from covernet.core.config import get_settings
from covernet.core.errors import CovernetError
from covernet.identity.access import Principal

WEB_DIR = Path(__file__).parent
TEMPLATES = WEB_DIR / "templates"
STATIC = WEB_DIR / "static"

LANG_COOKIE_SECONDS = 365 * 24 * 3600
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Vary": "Cookie",
}

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
i18n.install(env)


@lru_cache(maxsize=64)
def _static_version(path: str) -> str:
    file = (STATIC / path).resolve()
    if STATIC.resolve() not in file.parents or not file.is_file():
        raise ValueError(f"no static file {path!r}")
    return hashlib.sha256(file.read_bytes()).hexdigest()[:10]


def static_url(path: str) -> str:
    """``/static/<path>?v=<content hash>``: browsers may cache it for as long as they like."""
    return f"/static/{path}?v={_static_version(path)}"


env.globals["static_url"] = static_url


def mark_page(request: Request) -> None:
    """Router dependency of the page routes: their errors are answered with a page."""
    request.state.page = True


def wants_html(request: Request) -> bool:
    if request.url.path.startswith("/api/"):
        return False
    accept = request.headers.get("accept", "")
    if "text/html" in accept:
        return True
    return bool(getattr(request.state, "page", False)) and "json" not in accept


def principal_of(request: Request) -> Principal | None:
    """The caller, if an access dependency identified one for this request."""
    found = getattr(request.state, "principal", None)
    return found if isinstance(found, Principal) else None


def lang_href(request: Request, lang: str, path: str | None = None) -> str:
    """The link that shows the current page in ``lang``.

    Pages answering a POST give ``path``: a page that can be fetched with GET.
    """
    if path is not None:
        return f"{path}?{i18n.LANG_PARAM}={lang}"
    url = request.url.include_query_params(**{i18n.LANG_PARAM: lang})
    return f"{url.path}?{url.query}"


def render(
    request: Request,
    template: str,
    status: int = 200,
    *,
    headers: dict[str, str] | None = None,
    toggle_path: str | None = None,
    **context: Any,
) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    principal = principal_of(request)
    if toggle_path is None and request.method not in ("GET", "HEAD"):
        toggle_path = request.url.path  # a form page answering its own POST
    signed_in_by_cookie = principal is not None and principal.method == "cookie"
    page: dict[str, Any] = {
        "request": request,
        "lang": lang,
        "html_lang": i18n.HTML_LANG[lang],
        "principal": principal if principal and principal.is_authenticated else None,
        "csrf_meta": principal.csrf_token if signed_in_by_cookie and principal else None,
        "lang_links": [
            {
                "lang": code,
                "label": i18n.LANG_LABELS[code],
                "current": code == lang,
                "href": lang_href(request, code, toggle_path),
                "html_lang": i18n.HTML_LANG[code],
            }
            for code in i18n.LANGS
        ],
        "service_phone": get_settings().service_phone,
    }
    page.update(context)
    html = env.get_template(template).render(page)
    response = HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})
    response.headers["Content-Language"] = i18n.HTML_LANG[lang]
    chosen = i18n.requested_lang(request)
    if chosen is not None and request.cookies.get(i18n.LANG_COOKIE) != chosen:
        response.set_cookie(
            i18n.LANG_COOKIE,
            chosen,
            max_age=LANG_COOKIE_SECONDS,
            path="/",
            secure=get_settings().cookie_secure,
            httponly=True,
            samesite="lax",
        )
    return response


# Errors ------------------------------------------------------------------------------


def error_params(detail: Any) -> dict[str, Any]:
    """The values an error's message may mention (``{age}``, ``{minutes}``, …)."""
    params: dict[str, Any] = {}
    if isinstance(detail, dict):
        params.update({k: v for k, v in detail.items() if isinstance(v, str | int)})
        seconds = detail.get("retry_after_seconds")
        if isinstance(seconds, int):
            params["minutes"] = max(1, math.ceil(seconds / 60))
    return params


def error_message(error: CovernetError, lang: str) -> str:
    """The error in the page language (``error.<code>``), else the service's own message."""
    return i18n.translate_or(f"error.{error.code}", lang, error.message, error_params(error.detail))


def error_field(error: CovernetError) -> str | None:
    """The form field an error is about (``insured.birth_date`` -> ``birth_date``)."""
    if isinstance(error.detail, dict):
        field = error.detail.get("field")
        if isinstance(field, str):
            return field.rsplit(".", 1)[-1]
    return None


def error_headers(error: CovernetError) -> dict[str, str]:
    """``Retry-After`` for a throttled request."""
    if error.status != 429:
        return {}
    return {"Retry-After": str(error_params(error.detail).get("retry_after_seconds", 60))}


def render_error(request: Request, error: CovernetError) -> HTMLResponse:
    lang = i18n.negotiate_lang(request)
    title_key = f"error.title.{error.status}"
    if not i18n.has_message(title_key):
        title_key = "error.title.default"
    title = i18n.translate(title_key, lang)
    return render(
        request,
        "error.html",
        status=error.status,
        headers=error_headers(error),
        toggle_path=None if request.method in ("GET", "HEAD") else "/",
        error=error,
        title=title,
        message=error_message(error, lang),
    )
