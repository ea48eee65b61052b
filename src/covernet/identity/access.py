"""Who is calling, and who may call what.

Every route declares its audience with one of the dependencies here (``Public``,
``Customer``, ``Staff``, ``allow(...)``); a test walks the app and fails for a route
that declares none.  Callers are found, in order, by an ``X-API-Key`` header
(machines), an ``Authorization: Bearer`` token (API clients) or the session cookie
(pages).  Cookie-authenticated writes need the CSRF token (``X-CSRF-Token`` header or
``csrf_token`` form field).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from covernet.core.db import session_factory, unit_of_work_async
from covernet.core.errors import CovernetError, Forbidden, Unauthenticated
from covernet.identity import service
from covernet.identity.models import MACHINE_ROLES, STAFF_ROLES, Role

SESSION_COOKIE = "covernet_session"
CSRF_COOKIE = "covernet_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
T = TypeVar("T")


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One unit of work per request: commit after the handler, roll back if it raised.

    The session is opened on the event loop (it connects only at its first statement)
    and kept on the request, so the caller's credential is checked in this same unit of
    work (:func:`_principal`): one pool checkout and one commit per request.  A session
    that never touched the database is closed without a thread hop."""
    db = session_factory()()
    request.state.db = db
    try:
        yield db
    except BaseException:
        await _finish(db, commit=False)
        raise
    else:
        await _finish(db, commit=True)
    finally:
        request.state.db = None


async def _finish(db: Session, *, commit: bool) -> None:
    if not db.in_transaction():
        db.close()
        return
    await run_in_threadpool(_end_unit_of_work, db, commit)


def _end_unit_of_work(db: Session, commit: bool) -> None:
    try:
        if commit:
            db.commit()
        else:
            db.rollback()
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()


Db = Annotated[Session, Depends(get_db, scope="function")]


@dataclass
class Principal:
    role: Role | None = None
    user_id: str | None = None
    name: str | None = None
    session_id: str | None = None
    method: str = "anonymous"  # anonymous | cookie | bearer | api_key
    csrf_token: str | None = None
    api_key_id: str | None = None
    insurer_code: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_authenticated(self) -> bool:
        return self.role is not None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def is_customer(self) -> bool:
        return self.role is Role.customer


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def has_credentials(request: Request) -> bool:
    """Whether the request presents a credential at all (not whether it is valid)."""
    headers = request.headers
    return bool(
        headers.get("x-api-key")
        or headers.get("authorization")
        or request.cookies.get(SESSION_COOKIE)
    )


async def _principal(request: Request) -> Principal:
    """Who is calling.  Anonymous callers cost no database work at all; credentials are
    checked off the event loop, in the route's unit of work when its ``Db`` is already
    open (routes declare ``db: Db`` before the principal), else in a short read
    transaction of their own."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    if has_credentials(request):
        db = getattr(request.state, "db", None)
        if isinstance(db, Session):  # the route's own unit of work (``Db`` declared first)
            principal = await run_in_threadpool(_identify, request, db)
        else:
            principal = await unit_of_work_async(lambda own: _identify(request, own))
    else:
        principal = Principal()
    request.state.principal = principal
    return principal


SignedInLookup = Callable[[str, str], "service.SignedIn | None"]


def _identify(request: Request, db: Session, lookup: SignedInLookup | None = None) -> Principal:
    """The caller of ``request``; ``lookup`` (token, kind) finds sessions read before
    (:func:`identify_all`), else each is read here."""
    if lookup is None:

        def lookup(token: str, kind: str) -> service.SignedIn | None:
            return service.signed_in(db, token, kind=kind)

    api_key = request.headers.get("x-api-key")
    if api_key:
        row = service.resolve_api_key(db, api_key)
        if row is None:
            raise Unauthenticated("the API key is not valid", code="invalid_api_key")
        return Principal(
            role=Role(row.role),
            name=row.name,
            method="api_key",
            api_key_id=row.id,
            insurer_code=row.insurer_code,
        )
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated(
                "use 'Authorization: Bearer <access_token>'", code="invalid_token"
            )
        found = lookup(token.strip(), "bearer")
        if found is None:
            raise Unauthenticated(
                "the access token is not valid or has expired", code="invalid_token"
            )
        return Principal(
            role=Role(found.role),
            user_id=found.user_id,
            name=found.name,
            session_id=found.session_id,
            method="bearer",
        )
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        found = lookup(cookie, "cookie")
        if found is not None:
            principal = Principal(
                role=Role(found.role),
                user_id=found.user_id,
                name=found.name,
                session_id=found.session_id,
                method="cookie",
                csrf_token=found.csrf_token,
            )
            _check_csrf(request, principal)
            return principal
    return Principal()


def _check_csrf(request: Request, principal: Principal) -> None:
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER) or getattr(request.state, "form_csrf", None)
    expected = principal.csrf_token or ""
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden("the CSRF token is missing or wrong; reload the page", code="csrf_failed")


def allow(*roles: Role, anonymous: bool = False) -> Any:
    """A dependency that admits the given roles (and anyone, with ``anonymous``)."""
    allowed = frozenset(roles)

    async def check(request: Request) -> Principal:
        principal = await _principal(request)
        if anonymous:
            return principal
        return _admit(principal, allowed)

    check.access_roles = allowed  # type: ignore[attr-defined]
    check.access_anonymous = anonymous  # type: ignore[attr-defined]
    return Depends(check)


def _admit(principal: Principal, roles: frozenset[Role]) -> Principal:
    if not principal.is_authenticated:
        raise Unauthenticated("sign in first", code="unauthenticated")
    if principal.role not in roles:
        raise Forbidden("your account may not do this", code="forbidden")
    return principal


@dataclass
class Caller:
    """A caller not identified yet (:func:`allow_later`): a hot route may first answer
    what needs no identity (a sold-out envelope), then identify the caller in the
    same thread hop and unit of work as its own work (:meth:`identify_in`)."""

    request: Request
    roles: frozenset[Role]

    def identify_in(self, db: Session) -> Principal:
        """The caller, admitted or refused, identified within ``db``'s unit of work."""
        cached = getattr(self.request.state, "principal", None)
        principal = cached if isinstance(cached, Principal) else _identify(self.request, db)
        self.request.state.principal = principal
        return _admit(principal, self.roles)

    def _session_token(self) -> str | None:
        """The bearer token or session cookie this caller presents, if any."""
        headers = self.request.headers
        if headers.get("x-api-key"):
            return None
        auth = headers.get("authorization")
        if auth:
            scheme, _, token = auth.partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token else None
        return self.request.cookies.get(SESSION_COOKIE)

    async def run(self, work: Callable[[Session, Principal], T]) -> T:
        """``work(db, caller)`` in one unit of work, the caller identified in it: one
        pool checkout and one commit for the whole request, on the event loop on
        PostgreSQL (:func:`covernet.core.db.unit_of_work_async`)."""
        return await unit_of_work_async(lambda db: work(db, self.identify_in(db)))


def identify_all(db: Session, callers: Sequence[Caller]) -> list[Principal | CovernetError]:
    """Each caller identified and admitted (or refused) as by :meth:`Caller.identify_in`,
    with every session token read in one query (coalesced requests)."""
    tokens = [token for caller in callers if (token := caller._session_token())]
    lookup = service.signed_in_many(db, tokens)
    identified: list[Principal | CovernetError] = []
    for caller in callers:
        try:
            cached = getattr(caller.request.state, "principal", None)
            principal = (
                cached if isinstance(cached, Principal) else _identify(caller.request, db, lookup)
            )
            caller.request.state.principal = principal
            identified.append(_admit(principal, caller.roles))
        except CovernetError as error:
            identified.append(error)
    return identified


def allow_later(*roles: Role) -> Any:
    """Like :func:`allow`, but the credential is only required to be present here (401
    without one); the route identifies the caller with :meth:`Caller.identify_in`."""
    allowed = frozenset(roles)

    async def check(request: Request) -> Caller:
        if not has_credentials(request):
            raise Unauthenticated("sign in first", code="unauthenticated")
        return Caller(request, allowed)

    check.access_roles = allowed  # type: ignore[attr-defined]
    check.access_anonymous = False  # type: ignore[attr-defined]
    return Depends(check)


def open_route(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a route that needs no caller at all (health checks, static assets)."""
    endpoint.access_anonymous = True  # type: ignore[attr-defined]
    return endpoint


def public_route(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a hot route open to anyone that finds its caller itself with
    :func:`identify` (one dependency less to solve on every request)."""
    return open_route(endpoint)


async def identify(request: Request) -> Principal:
    """The caller (anonymous when no credential is sent); CSRF-checked for cookies."""
    return await _principal(request)


Public = Annotated[Principal, allow(anonymous=True)]
Customer = Annotated[Principal, allow(Role.customer)]
AnyUser = Annotated[Principal, allow(*Role)]
Staff = Annotated[Principal, allow(*STAFF_ROLES)]
Admin = Annotated[Principal, allow(Role.admin)]
Machine = Annotated[Principal, allow(*MACHINE_ROLES)]
Insurer = Annotated[Principal, allow(Role.insurer)]
LaterCustomer = Annotated[Caller, allow_later(Role.customer)]
