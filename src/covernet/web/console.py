"""Shared by the staff console pages."""

from __future__ import annotations

from fastapi.responses import RedirectResponse, Response

from covernet.core.errors import Forbidden
from covernet.identity.access import Principal
from covernet.identity.models import Role


def console_guard(
    who: Principal, roles: frozenset[Role], path: str, refusal: str
) -> Response | None:
    """Staff console pages: sign in first (back to ``path``), then the role must fit."""
    if not who.is_authenticated:
        return RedirectResponse(f"/login?as=staff&next={path}", status_code=303)
    if who.role not in roles:
        raise Forbidden(refusal)
    return None
