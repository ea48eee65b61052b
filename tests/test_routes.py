"""Every route declares who may call it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.routing import APIRoute

from covernet.app import create_app


def _api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)  # routers included into the app
        if inner is not None:
            yield from _api_routes(inner.routes)


def _declares_access(dependant: Any) -> bool:
    for dep in dependant.dependencies:
        call = dep.call
        if hasattr(call, "access_roles") or hasattr(call, "access_anonymous"):
            return True
        if _declares_access(dep):
            return True
    return False


def test_every_route_declares_its_audience() -> None:
    routes = list(_api_routes(create_app().routes))
    undeclared = [
        f"{sorted(route.methods)} {route.path}"
        for route in routes
        if not hasattr(route.endpoint, "access_anonymous") and not _declares_access(route.dependant)
    ]
    assert undeclared == []
    # The walk is not vacuous: it reaches routes of included routers.
    paths = {route.path for route in routes}
    assert {"/api/v1/quotes", "/api/v1/auth/login", "/api/v1/admin/api-keys"} <= paths
