"""Fast lanes: a few hot routes served below the web framework.

A FastAPI request passes route matching over every included router, dependency solving,
response validation and several wrapping layers before and after the route's own work:
about three quarters of a red envelope grab's CPU, measured with
``bench/red_envelope.py``, when the grab's database work is shared by a whole batch.  A
lane is a plain ``handler(request, match) -> Response | None`` for one method and path
pattern, tried before the framework: it answers (errors rendered like every other
route's) or, returning None, hands the request on to the framework unchanged.

A lane does not replace its route: the route stays declared for the API's documentation
and for what the lane leaves to it (a request without a credential, say), and both call
the same function.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request, re.Match[str]], Awaitable[Response | None]]
ExceptionHandlers = Mapping[Any, Callable[[Request, Any], Awaitable[Response] | Response]]


@dataclass(frozen=True)
class Lane:
    method: str
    path: re.Pattern[str]
    handler: Handler


class FastLanes:
    """Pure ASGI middleware serving ``lanes``; an exception a lane raises is answered by
    the first of ``handlers`` (by exception class, as the app's) that fits it."""

    def __init__(self, app: ASGIApp, lanes: Sequence[Lane], handlers: ExceptionHandlers) -> None:
        self.app = app
        self.lanes = tuple(lanes)
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for lane in self.lanes:
                if scope["method"] != lane.method:
                    continue
                found = lane.path.match(scope["path"])
                if found is None:
                    continue
                request = Request(scope, receive)
                try:
                    response = await lane.handler(request, found)
                except Exception as error:
                    response = await self._answer(request, error)
                if response is not None:
                    await response(scope, receive, send)
                    return
                break
        await self.app(scope, receive, send)

    async def _answer(self, request: Request, error: Exception) -> Response:
        for kind in type(error).__mro__:
            handler = self.handlers.get(kind)
            if handler is not None:
                answer = handler(request, error)
                return await answer if inspect.isawaitable(answer) else answer
        raise error  # unexpected: the error containment around the app answers it
