"""JSON request bodies as the API reads them: only what can be stored exactly.

Everything a body feeds (workflow documents, credential data, execution and
schedule input, event history) is stored as JSON by orjson, and Python's
`json` accepts more than that:
- integers of any size, which orjson refuses: read unbounded, such a number
  got as far as the writer and failed the whole batch it was in, other
  callers' writes with it, and its own caller got a 500;
- `NaN`, `Infinity` and numbers like `1e400` (read as infinity), which are
  not JSON: orjson writes them as `null`, so the stored value silently
  differed from the one sent;
- lone UTF-16 surrogates (`"\\ud800"`, or their raw bytes), which are not
  Unicode: encoding them to UTF-8 fails wherever they are stored or
  answered (a 500).
Each is refused here, for every route, as the caller's 422 with a stable code
that names where in the body it was. (Webhook bodies are read by their own
gateway, not here.)

A body sent with a Content-Type that is not JSON (`curl -d` sends
`application/x-www-form-urlencoded`) is refused with 415
`unsupported_media_type` saying what to send: FastAPI would hand its bytes to
validation, whose "Input should be a valid dictionary" says nothing of the cause.
So is a body without a Content-Type, which FastAPI (strict by default) does not read
as JSON either. An empty body is never refused here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Final

from fastapi import HTTPException, params
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from linkflow.services.errors import FieldProblem, Invalid

__all__ = ["BodyRefused", "JSONRoute", "parse_body"]

_SMALLEST: Final = -(2**63)
_LARGEST: Final = 2**64 - 1
# An escape that decodes to a surrogate (U+D800..U+DFFF). Only when one occurs can
# a decoded string hold a lone surrogate (raw surrogate bytes fail strict decoding),
# so the walk that finds it runs only then. An escaped backslash before "ud8.." also
# matches, harmlessly: the walk then finds nothing.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89abcdefABCDEF]")


class BodyRefused(HTTPException):
    """A body refused while it is read, carrying the domain error to render.

    An HTTPException because FastAPI lets those through its body parsing
    unchanged (it turns any other error into a plain 400); `linkflow.api.errors`
    renders `error` as every other `Invalid`.
    """

    def __init__(self, error: Invalid) -> None:
        super().__init__(422, error.detail)
        self.error = error


def _out_of_range() -> BodyRefused:
    return BodyRefused(
        Invalid(
            "an integer in the body is outside the 64-bit range",
            code="number_out_of_range",
            errors=[FieldProblem("body", "integer outside [-2^63, 2^64-1]", "number_out_of_range")],
        )
    )


def _bounded_int(text: str) -> int:
    value = int(text)
    if not _SMALLEST <= value <= _LARGEST:
        raise _out_of_range()
    return value


def _field(path: tuple[str | int, ...]) -> str:
    # A key on the path may hold the surrogate itself: escaped, the name can be answered.
    parts = (str(part).encode("utf-8", "backslashreplace").decode() for part in path)
    return ".".join(["body", *parts])


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _unicode_refusal(where: str) -> BodyRefused:
    return BodyRefused(
        Invalid(
            f"{where} holds a lone UTF-16 surrogate, which is not valid Unicode",
            code="invalid_unicode",
            errors=[FieldProblem(where, "lone surrogate: not valid Unicode", "invalid_unicode")],
        )
    )


def _non_finite_refusal(where: str) -> BodyRefused:
    return BodyRefused(
        Invalid(
            f"{where} is NaN, Infinity or beyond the range of a double, which JSON cannot hold",
            code="number_not_finite",
            errors=[FieldProblem(where, "not a finite number", "number_not_finite")],
        )
    )


def _walk(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[BodyRefused]:
    """The refusals of `value`'s leaves, first found first (keys are checked too)."""
    if isinstance(value, str):
        if _has_surrogate(value):
            yield _unicode_refusal(_field(path))
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield _non_finite_refusal(_field(path))
    elif isinstance(value, dict):
        for key, item in value.items():
            if _has_surrogate(key):
                yield _unicode_refusal(_field((*path, key)))
            yield from _walk(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, index))


def _decode(body: bytes) -> str:
    encoding = json.detect_encoding(body)
    try:
        # Strict: `json.loads` of bytes would let raw surrogate bytes through
        # ("surrogatepass").
        return body.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError:
        raise BodyRefused(
            Invalid(
                f"the body is not valid {encoding.upper()}",
                code="invalid_unicode",
                errors=[FieldProblem("body", f"not valid {encoding}", "invalid_unicode")],
            )
        ) from None


def parse_body(body: bytes) -> Any:
    """`body` parsed as JSON that can be stored exactly; `BodyRefused` names what cannot.

    Malformed JSON raises `json.JSONDecodeError` (FastAPI's 400 `malformed_json`).
    """
    non_finite: list[str] = []

    def finite_float(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            non_finite.append(text)
        return value

    def constant(name: str) -> float:
        non_finite.append(name)
        return float(name)  # located by the walk below

    text = _decode(body)
    value = json.loads(text, parse_int=_bounded_int, parse_float=finite_float,
                       parse_constant=constant)  # fmt: skip
    if non_finite or _SURROGATE_ESCAPE.search(text):
        for refusal in _walk(value):
            raise refusal
    return value


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _not_json(content_type: str | None) -> HTTPException:
    media = (content_type or "").partition(";")[0].strip()[:100]
    shown = f"got {media!r}" if media else "got no Content-Type"
    return HTTPException(
        415,
        f"the body must be JSON, sent with 'Content-Type: application/json' ({shown}); "
        "with curl: -H 'Content-Type: application/json' --data '{...}'",
    )


class _StorableJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_body(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """An API route whose JSON body is read by `parse_body`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        body_field = getattr(self, "body_field", None)
        reads_json = body_field is not None and not isinstance(body_field.field_info, params.Form)

        async def storable(request: Request) -> Response:
            ours = _StorableJSONRequest(request.scope, request.receive)
            content_type = ours.headers.get("content-type")
            # Read first only for a route with a JSON body and no JSON type (rare); the
            # read is cached for the handler. An empty body stays accepted (`POST
            # .../execute` with no body at all, whatever curl declared).
            if (
                reads_json
                and (content_type is None or not _is_json(content_type))
                and await ours.body()
            ):
                raise _not_json(content_type)
            return await handler(ours)

        return storable
