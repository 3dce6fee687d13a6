"""Errors as RFC 9457 problem details (``application/problem+json``), mapped once, here.

Every error response of the API, whatever raised it, has the same shape:
``{"type", "title", "status", "detail", "code", "errors": [...]}`` plus any
extension members of the error (an `mfa_token`...). `code` is stable and
machine-readable; `errors` lists field problems (``{"field", "message",
"type"}``). Domain errors are mapped by class along their hierarchy; FastAPI's
validation errors become 422 `validation_error` (400 `malformed_json` when the
body is not JSON at all; a body JSON that cannot be stored exactly is refused
while read, see `linkflow.api.json_body`); unknown routes and methods are 404 and 405
problems; an unexpected exception is a 500 `internal_error` that names the
request id and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from linkflow.api.json_body import BodyRefused
from linkflow.observability.logging import get_logger
from linkflow.services.errors import (
    UNAVAILABLE_ERRORS,
    BadRequest,
    Conflict,
    FieldProblem,
    Forbidden,
    Invalid,
    LinkFlowError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    as_unavailable,
)

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "install_error_handlers",
    "internal_error",
    "problem_response",
    "render_error",
]

PROBLEM_JSON: Final = "application/problem+json"
log = get_logger(__name__)

STATUS_OF: Final[Mapping[type[LinkFlowError], int]] = {
    NotFound: 404,
    Conflict: 409,
    Invalid: 422,
    BadRequest: 400,
    Forbidden: 403,
    Unauthorized: 401,
    RateLimited: 429,
    PayloadTooLarge: 413,
    MethodNotAllowed: 405,
    Unavailable: 503,
}
_CODE_OF_STATUS: Final = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class FieldError(BaseModel):
    field: str
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem detail; extension members may follow."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable, machine-readable error code.")
    errors: list[FieldError] = Field(default_factory=list)


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    errors: Iterable[FieldProblem] = (),
    extra: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:linkflow:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "errors": [{"field": e.field, "message": e.message, "type": e.type} for e in errors],
    }
    if extra:
        body.update({key: value for key, value in extra.items() if key not in body})
    return Response(
        orjson.dumps(body), status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def _status_for(error: LinkFlowError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


def render_error(error: LinkFlowError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after_s)
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="linkflow"'
    if isinstance(error, Unavailable):
        headers["Retry-After"] = "5"
    return problem_response(
        _status_for(error),
        error.code,
        error.detail,
        errors=error.errors,
        extra=error.extra,
        headers=headers,
    )


def _field(location: Sequence[Any]) -> str:
    return ".".join(str(part) for part in location)


def _validation_problems(errors: Sequence[Any]) -> list[FieldProblem]:
    return [
        FieldProblem(
            _field(error.get("loc", ())),
            str(error.get("msg", "invalid")),
            str(error.get("type", "invalid")),
        )
        for error in errors
    ]


async def _on_domain_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, LinkFlowError)
    return render_error(error)


async def _on_validation_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    raw = list(error.errors())
    broken = [item for item in raw if item.get("type") == "json_invalid"]
    if broken:
        where = (broken[0].get("loc") or ("?",))[-1]
        return problem_response(
            400,
            "malformed_json",
            f"the body is not valid JSON (at character {where})",
            errors=[FieldProblem("body", "not valid JSON", "json_invalid")],
        )
    problems = _validation_problems(raw)
    return problem_response(422, "validation_error", "the request is not valid", errors=problems)


async def _on_http_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    if isinstance(error, BodyRefused):
        return render_error(error.error)
    code = getattr(error, "code", None) or _CODE_OF_STATUS.get(
        error.status_code, HTTPStatus(error.status_code).name.lower()
    )
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
    if error.status_code == 404 and detail == HTTPStatus.NOT_FOUND.phrase:  # Starlette's own
        detail = "no such resource or route"
    return problem_response(error.status_code, code, detail, headers=error.headers)


async def _on_unavailable(request: Request, error: Exception) -> Response:
    unavailable = as_unavailable(error)
    if unavailable is None:
        raise error
    log.warning("request.dependency_unavailable", error=str(error), path=request.url.path)
    return render_error(unavailable)


def internal_error(request_id: str) -> Response:
    """The 500 for an unexpected exception (logged by the caller); it leaks nothing."""
    return problem_response(
        500, "internal_error", f"an unexpected error occurred (request id {request_id})"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LinkFlowError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    for error_class in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_class, _on_unavailable)
