"""An ``APIRoute`` documented like any other but served without FastAPI's per-request work.

For the hottest path (v2 infer of a small model, ~1 ms of server CPU per request), FastAPI's
dependency solving, parameter validation and per-route exit stacks were a measurable share of a
request: the same handler served as a lean route answered ~20% more requests/s at concurrency
16 (benchmarks/serving.py on 2 cores). The OpenAPI document still comes from the endpoint's
signature and the route's ``response_model``/``responses``/``openapi_extra``; errors still go
through the app's exception handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.routing import request_response

RawEndpoint = Callable[..., Awaitable[Response]]


class RawRequestRoute(APIRoute):
    """Calls ``endpoint(request, **path_params)`` and sends the ``Response`` it returns.

    The endpoint gets no dependencies and no validated parameters: path parameters arrive as
    the strings in the URL and the endpoint reads and checks the body itself.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        target: RawEndpoint = endpoint

        async def handle(request: Request) -> Response:
            return await target(request, **request.path_params)

        self.app = request_response(handle)
