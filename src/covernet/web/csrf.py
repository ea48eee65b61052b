"""CSRF protection for page forms.

* Signed-in (cookie) callers: every form carries the session's CSRF token; the
  access dependency checks it.  :func:`read_form` must run before that dependency,
  so page routes that take a form declare ``form: PostedForm`` before their access
  parameter.
* Anonymous forms (login, register): a double-submit cookie ``covernet_csrf``, set
  when the form is shown, must equal the form's ``csrf_token`` field.  The token is
  signed with the secret key, so nobody can invent one; the cookie is HTTP-only and
  SameSite=Strict.  A host that can set cookies for this domain (a compromised
  sibling subdomain) could still plant a token it fetched here, which is why these
  forms only sign in or register and never act for a signed-in customer.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData

from covernet.core.config import get_settings
from covernet.core.errors import Forbidden
from covernet.core.ids import new_token
from covernet.identity.access import CSRF_COOKIE, Principal

FORM_FIELD = "csrf_token"


async def read_form(request: Request) -> FormData:
    """Read the posted form and hand its CSRF token to the access check."""
    form = await request.form()
    token = form.get(FORM_FIELD)
    request.state.form_csrf = token if isinstance(token, str) else None
    return form


PostedForm = Annotated[FormData, Depends(read_form)]


def _signature(nonce: str) -> str:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"csrf:{nonce}".encode(), hashlib.sha256).hexdigest()[:32]


def _well_signed(token: str) -> bool:
    nonce, _, signature = token.partition(".")
    return bool(nonce) and hmac.compare_digest(signature.encode(), _signature(nonce).encode())


def anonymous_token(request: Request) -> str:
    """The double-submit token of this browser (reused while it stays valid)."""
    current = request.cookies.get(CSRF_COOKIE)
    if current and _well_signed(current):
        return current
    nonce = new_token(18)
    return f"{nonce}.{_signature(nonce)}"


def set_anonymous_cookie(response: Response, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        path="/",
        httponly=True,
        samesite="strict",
        secure=get_settings().cookie_secure,
    )


def form_token(request: Request, principal: Principal) -> str:
    """The token a form shown to ``principal`` carries."""
    if principal.method == "cookie" and principal.csrf_token:
        return principal.csrf_token
    return anonymous_token(request)


def check_anonymous(request: Request, form: FormData, principal: Principal) -> None:
    """Refuse an anonymous form post whose token does not match its cookie.

    Cookie-authenticated posts were checked against the session by the access layer.
    """
    if principal.method == "cookie":
        return
    sent = form.get(FORM_FIELD)
    cookie = request.cookies.get(CSRF_COOKIE)
    if (
        not isinstance(sent, str)
        or not cookie
        or not hmac.compare_digest(sent.encode(), cookie.encode())
        or not _well_signed(cookie)
    ):
        raise Forbidden("the CSRF token is missing or wrong; reload the page", code="csrf_failed")
