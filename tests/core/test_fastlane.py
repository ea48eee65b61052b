"""Fast lanes: a matching request is answered by its lane (refusals rendered by the app's
renderer); anything else, and what the lane hands back, reaches the framework as it
came."""

from __future__ import annotations

import re

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from covernet.core.errors import Conflict, CovernetError
from covernet.core.fastlane import FastLanes, Lane


async def lane(request: Request, found: re.Match[str]) -> Response | None:
    item = found.group(1)
    if item == "pass":
        return None  # left to the route
    if item == "refuse":
        raise Conflict("no such luck", code="refused")
    body = await request.body()
    return JSONResponse({"lane": item, "body": body.decode()})


async def route(request: Request) -> Response:
    return PlainTextResponse(f"route {request.method} {request.url.path}")


async def render(request: Request, error: CovernetError) -> Response:
    return JSONResponse(error.to_dict(), status_code=error.status)


def client() -> TestClient:
    app = Starlette(
        routes=[
            Route("/things/{item}/go", route, methods=["GET", "POST"]),
            Route("/things/{item}/stay", route, methods=["POST"]),
        ]
    )
    app.add_middleware(
        FastLanes,
        lanes=(Lane("POST", re.compile(r"^/things/([^/]+)/go$"), lane),),
        handlers={CovernetError: render},
    )
    return TestClient(app)


def test_a_matching_request_is_answered_by_its_lane() -> None:
    answer = client().post("/things/apple/go", content=b"hello")
    assert answer.status_code == 200
    assert answer.json() == {"lane": "apple", "body": "hello"}


def test_a_refusal_is_rendered_like_any_route_error() -> None:
    answer = client().post("/things/refuse/go")
    assert answer.status_code == 409
    assert answer.json()["error"] == "refused" and answer.json()["message"] == "no such luck"


def test_what_the_lane_leaves_and_what_it_does_not_match_reach_the_app() -> None:
    test = client()
    assert test.post("/things/pass/go").text == "route POST /things/pass/go"
    assert test.get("/things/apple/go").text == "route GET /things/apple/go"  # other method
    assert test.post("/things/apple/stay").text == "route POST /things/apple/stay"
