"""JSON request bodies as the API reads them: integers bounded to 64 bits.

Python's `json` reads an integer of any size, but everything a body feeds
(workflow documents, execution input, event history) is stored as JSON by
orjson, which refuses integers outside the 64-bit range. Read unbounded, such
a number got as far as the writer and failed the whole batch it was in, other
callers' writes with it, and its own caller got a 500. Refused here, it is the
caller's 422 with a stable code. (Webhook bodies are read by orjson, which
turns such a number into a float.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import HTTPException
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["JSONRoute", "NumberOutOfRange"]

_SMALLEST: Final = -(2**63)
_LARGEST: Final = 2**64 - 1


class NumberOutOfRange(HTTPException):
    """An HTTPException: FastAPI lets those through its body parsing unchanged (it
    turns other errors into a plain 400)."""

    code = "number_out_of_range"

    def __init__(self) -> None:
        super().__init__(422, "an integer in the body is outside the 64-bit range")


def _bounded_int(text: str) -> int:
    value = int(text)
    if not _SMALLEST <= value <= _LARGEST:
        raise NumberOutOfRange
    return value


class _BoundedJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_int=_bounded_int)
        return self._json


class JSONRoute(APIRoute):
    """An API route whose JSON body is read by `_BoundedJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            return await handler(_BoundedJSONRequest(request.scope, request.receive))

        return bounded
