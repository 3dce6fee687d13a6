"""The OpenAPI document: FastAPI's, with errors described as they really are.

FastAPI documents 422 as its own `HTTPValidationError` in ``application/json``;
LinkFlow answers every error as a problem (``application/problem+json``). So
every operation gets the `Problem` schema for 422 and as its `default`
response (any other error status), and the bearer scheme is declared so the
docs' "Authorize" button works.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from linkflow.api.errors import PROBLEM_JSON

__all__ = ["install_openapi"]

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_PROBLEM_RESPONSE = {
    "description": "A problem (RFC 9457).",
    "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}},
}
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _build(app: FastAPI) -> dict[str, Any]:
    from linkflow.api.errors import Problem

    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schemas["Problem"].pop("$defs", {}))
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An access token (JWT) or an API key (`lf_...`).",
        }
    }
    schema["security"] = [{"bearer": []}, {}]
    for path in schema.get("paths", {}).values():
        for method, operation in path.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            responses["422"] = _PROBLEM_RESPONSE
            responses["default"] = _PROBLEM_RESPONSE
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve the adjusted document at the app's `openapi_url` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
