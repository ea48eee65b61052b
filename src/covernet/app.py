"""The FastAPI application: routers, error handlers, pages, static files."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from covernet import __version__
from covernet.audit import api as audit_api
from covernet.audit import pages as audit_pages
from covernet.catalog import api as catalog_api
from covernet.claims import api as claims_api
from covernet.claims import console as claims_console
from covernet.claims import pages as claims_pages
from covernet.compliance import api as compliance_api
from covernet.compliance import live_pages
from covernet.compliance import pages as compliance_pages
from covernet.compliance.monitor_routes import api_router as monitors_api
from covernet.compliance.monitor_routes import page_router as monitors_pages
from covernet.consult import api as desk_api
from covernet.consult import (
    appointment_api,
    appointment_pages,
    assistant_api,
    email_api,
    help_pages,
    wechat_api,
)
from covernet.consult import chat as desk_chat
from covernet.consult import pages as desk_pages
from covernet.core.bodies import component_schemas
from covernet.core.config import Environment, get_settings
from covernet.core.db import dispose_loop_engines, get_engine
from covernet.core.errors import CovernetError, ErrorOut
from covernet.core.fastlane import FastLanes, Lane
from covernet.core.runtime import tune_gc
from covernet.crm import api as crm_api
from covernet.crm import consents as crm_consents
from covernet.crm import pages as crm_pages
from covernet.identity import api as identity_api
from covernet.identity.access import open_route
from covernet.integration import insurers as insurer_sync
from covernet.integration import sandbox_routes as sandbox_insurer
from covernet.notify import api as notify_api
from covernet.partners import api as partner_events_api
from covernet.payments import api as payments_api
from covernet.payments import pages as payments_pages
from covernet.payments import payouts_api
from covernet.payments import providers as payment_providers
from covernet.payments.providers import sandbox as payment_sandbox
from covernet.policies import api as policies_api
from covernet.policies import buying_api, partner_api
from covernet.policies import pages as purchase_pages
from covernet.policies import verify_routes as policy_verify
from covernet.social import api as social_api
from covernet.social import envelope_pages, offer_pages, offers_api
from covernet.social import link_pages as share_link_pages
from covernet.social import links_api as share_links_api
from covernet.web import pages
from covernet.web.render import STATIC, error_headers, render_error, wants_html

log = logging.getLogger("covernet")

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _respond(request: Request, error: CovernetError) -> Response:
    if wants_html(request):
        return render_error(request, error)
    return JSONResponse(error.to_dict(), status_code=error.status, headers=error_headers(error))


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    if get_settings().env is not Environment.test:  # test runs start many apps in one process
        tune_gc()
    # The sandbox provider delivers its callbacks from this process (not under tests,
    # which deliver them explicitly).
    stop_sandbox = None
    if payment_providers.sandbox_enabled() and get_settings().env is not Environment.test:
        stop_sandbox = payment_sandbox.start_deliverer()
    yield
    if stop_sandbox is not None:
        await stop_sandbox()
    await dispose_loop_engines()


class ContainUnexpectedErrors:
    """Answer an unexpected failure with the platform's error format, and log only its
    type and route: exception messages may carry personal data, so the exception is not
    passed on to the server's own error log either."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            request = Request(scope)
            log.error("unhandled %s on %s %s", type(exc).__name__, request.method, scope["path"])
            if started:
                return  # the answer is already on its way; nothing better can be sent
            error = CovernetError(
                "something went wrong on our side; please try again",
                code="internal_error",
                status=500,
            )
            await _respond(request, error)(scope, receive, send)


def _lanes() -> list[Lane]:
    """The hot routes served before FastAPI's routing (covernet.core.fastlane)."""
    lanes = [*policies_api.LANES, *buying_api.LANES, *social_api.LANES, *payments_api.LANES]
    if payment_providers.sandbox_enabled():  # as its routes, only when in use
        lanes += payments_pages.LANES
    return lanes


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        lifespan=lifespan,
        title="Covernet",
        version=__version__,
        description="Selling and servicing insurance online, compliant by construction.",
        docs_url="/docs",
        redoc_url=None,
    )

    @app.exception_handler(CovernetError)
    async def covernet_error(request: Request, exc: CovernetError) -> Response:
        return _respond(request, exc)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {"field": _field_path(tuple(e["loc"])), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        error = CovernetError(
            f"the request is malformed: {summary}",
            code="malformed_request",
            status=422,
            detail=problems,
        )
        return _respond(request, error)

    app.add_middleware(FastLanes, lanes=_lanes(), handlers=app.exception_handlers)
    app.add_middleware(share_links_api.ShareAttribution)
    app.add_middleware(ContainUnexpectedErrors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        message = str(exc.detail) if exc.detail else code.replace("_", " ")
        return _respond(request, CovernetError(message, code=code, status=exc.status_code))

    # Routers are matched in order, each by scanning its routes: the hot paths first
    # (tests/test_routes.py checks that no route shadows another).
    app.include_router(policies_api.router)  # quotes
    app.include_router(buying_api.router)  # applications, policies
    app.include_router(social_api.router)  # red envelope grabs
    app.include_router(payments_api.router)  # provider callbacks
    app.include_router(partner_api.router)  # partner batches
    app.include_router(catalog_api.router)
    app.include_router(identity_api.router)
    app.include_router(audit_api.router)
    app.include_router(compliance_api.router)
    app.include_router(claims_api.router)
    app.include_router(partner_events_api.router)
    app.include_router(policy_verify.api_router)
    app.include_router(payouts_api.router)
    app.include_router(notify_api.router)
    app.include_router(share_links_api.router)
    app.include_router(assistant_api.router)
    app.include_router(crm_consents.router)
    app.include_router(offers_api.router)
    app.include_router(crm_api.router)
    app.include_router(crm_pages.reports_router)  # before the desk's /console/desk/{id}
    app.include_router(email_api.router)
    app.include_router(wechat_api.router)
    app.include_router(appointment_api.router)
    app.include_router(appointment_pages.router)  # before the desk's /console/desk/{id}
    app.include_router(desk_api.router)
    app.include_router(desk_chat.router)
    app.include_router(desk_pages.router)
    if payment_providers.sandbox_enabled():  # the sandbox's pages exist only when in use
        app.include_router(payments_pages.router)
        app.include_router(payouts_api.sandbox_router)
    if insurer_sync.sandbox_configured():  # the sandbox insurer exists only when in use
        app.include_router(sandbox_insurer.router)
    app.include_router(pages.router)
    app.include_router(policy_verify.page_router)
    app.include_router(claims_pages.router)  # before purchase_pages: POST /policies/{id}/claim
    app.include_router(claims_console.router)
    app.include_router(purchase_pages.router)
    app.include_router(audit_pages.router)
    app.include_router(compliance_pages.router)
    app.include_router(live_pages.router)
    app.include_router(monitors_api)
    app.include_router(monitors_pages)
    app.include_router(envelope_pages.router)
    app.include_router(offer_pages.router)
    app.include_router(crm_consents.pages)
    app.include_router(crm_pages.router)
    app.include_router(share_link_pages.router)
    app.include_router(help_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", tags=["ops"])
    @open_route
    def healthz() -> dict[str, Any]:
        """Answers 200 when the app and its database are up, 503 otherwise."""
        try:
            with get_engine().connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("health check: database unreachable: %s", type(exc).__name__)
            return JSONResponse(  # type: ignore[return-value]
                {"status": "down", "database": "unreachable"}, status_code=503
            )
        return {"status": "ok", "version": __version__, "env": settings.env.value}

    @app.get("/api/v1/ping", tags=["ops"])
    @open_route
    async def ping() -> dict[str, str]:
        """A bare endpoint: no database, no caller; the baseline for benchmarks."""
        return {"pong": "ok"}

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


ERROR_STATUSES = {
    "400": "rejected: the input breaks a rule (the error code names it)",
    "401": "not signed in, or the credential is not valid",
    "403": "signed in, but not allowed",
    "404": "not found (or not yours)",
    "409": "conflicts with the current state",
    "422": "malformed request",
    "429": "too many attempts; see Retry-After",
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the error format Covernet really answers with."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Error"] = ErrorOut.model_json_schema()
    components.update(component_schemas())
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status, meaning in ERROR_STATUSES.items():
                responses[status] = {"description": meaning, **ref}
            responses.setdefault("500", {"description": "unexpected failure", **ref})
    app.openapi_schema = schema
    return schema
