"""Every route declares who may call it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import Match

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


def _audience(route: APIRoute) -> tuple[bool, frozenset[str]]:
    """(anyone may call, roles admitted) as declared by the route's access dependency."""
    if hasattr(route.endpoint, "access_anonymous"):
        return True, frozenset()
    for dep in route.dependant.dependencies:
        if hasattr(dep.call, "access_roles"):
            return dep.call.access_anonymous, frozenset(r.value for r in dep.call.access_roles)
    raise AssertionError(f"{route.path} declares no audience")


def test_sensitive_routes_admit_only_their_audience() -> None:
    routes = {
        (route.path, m): route for route in _api_routes(create_app().routes) for m in route.methods
    }
    expected = {
        ("/api/v1/admin/api-keys", "POST"): {"admin"},
        ("/api/v1/admin/api-keys", "GET"): {"admin"},
        ("/api/v1/admin/api-keys/{key_id}", "DELETE"): {"admin"},
        ("/api/v1/insurer/products", "GET"): {"insurer"},
    }
    for key, roles in expected.items():
        anonymous, admitted = _audience(routes[key])
        assert not anonymous and admitted == roles, key
    assert _audience(routes[("/api/v1/auth/me", "GET")])[0] is False


def test_no_route_is_shadowed_by_an_earlier_one() -> None:
    """Each route's own path (parameters filled in) reaches that route first: moving a
    router earlier (the hot paths are matched first) can never hide another route."""
    routes = list(_api_routes(create_app().routes))
    shadowed = []
    for route in routes:
        path = re.sub(r"\{[^}]+\}", "x1", route.path)
        for method in route.methods:
            scope = {"type": "http", "path": path, "method": method, "root_path": ""}
            first = next(r for r in routes if r.matches(scope)[0] is Match.FULL)
            if first is not route:
                shadowed.append(f"{method} {route.path} is reached by {first.path}")
    assert shadowed == []
    assert len(routes) > 150


def test_every_fast_lane_serves_exactly_one_declared_route() -> None:
    """A lane answers before routing, so it must stand for one route and shadow none:
    its pattern matches that route's path (parameters filled in) and no other's."""
    from covernet.app import _lanes

    routes = list(_api_routes(create_app().routes))
    lanes = _lanes()
    assert lanes  # not vacuous
    for lane in lanes:
        served = [
            f"{lane.method} {route.path}"
            for route in routes
            if lane.method in route.methods
            and lane.path.match(re.sub(r"\{[^}]+\}", "x1", route.path))
        ]
        assert len(served) == 1, (lane.path.pattern, served)
