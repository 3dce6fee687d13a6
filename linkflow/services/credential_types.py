"""The credential types: their fields, which of them are secret, and their JSON Schemas.

A credential's `data` is checked against its type here, on create and on
every update, so the worker can rely on what it decrypts: required fields
are present, integers are integers, enums hold one of their values.

Invariants:
- Unknown fields are refused. A field the schema does not know could not be
  known to be secret, and would be shown in clear on every read.
- Secret fields are write-only: `masked` shows them as `MASK` (or None when
  unset), and `merged` keeps a stored secret when an update omits it or
  sends `MASK` back, which is what a form that re-submits a read does.
- Problems name the field as ``body.data.<field>`` and never echo a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from linkflow.services.errors import FieldProblem, Invalid

__all__ = [
    "CREDENTIAL_TYPES",
    "MASK",
    "CredentialType",
    "FieldSpec",
    "credential_type",
    "masked",
    "merged",
    "secret_values",
    "validated",
]

MASK: Final = "••••••"
"""What a read shows instead of a secret value."""
MAX_TEXT_CHARS: Final = 16 * 1024
"""Long enough for any token we know of (JWTs, PEM-free API keys), short enough to bound a row."""

FieldKind = Literal["string", "url", "integer", "boolean", "datetime"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a credential type."""

    name: str
    kind: FieldKind = "string"
    required: bool = False
    secret: bool = False
    default: str | int | bool | None = None
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    description: str = ""

    def schema(self) -> dict[str, Any]:
        """This field as a JSON Schema property."""
        out: dict[str, Any] = {"type": "string"}
        if self.kind == "integer":
            out = {"type": "integer"}
            if self.minimum is not None:
                out["minimum"] = self.minimum
            if self.maximum is not None:
                out["maximum"] = self.maximum
        elif self.kind == "boolean":
            out = {"type": "boolean"}
        elif self.kind == "url":
            out["format"] = "uri"
        elif self.kind == "datetime":
            out["format"] = "date-time"
        else:
            out["maxLength"] = MAX_TEXT_CHARS
        if self.choices:
            out["enum"] = list(self.choices)
        if self.default is not None:
            out["default"] = self.default
        if self.secret:
            out["writeOnly"] = True
        if self.description:
            out["description"] = self.description
        return out

    def problem(self, value: object) -> str | None:
        """Why `value` is not acceptable for this field, or None."""
        if self.kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                return "must be an integer"
            if self.minimum is not None and value < self.minimum:
                return f"must be at least {self.minimum}"
            if self.maximum is not None and value > self.maximum:
                return f"must be at most {self.maximum}"
            return None
        if self.kind == "boolean":
            return None if isinstance(value, bool) else "must be true or false"
        if not isinstance(value, str):
            return "must be a string"
        if len(value) > MAX_TEXT_CHARS:
            return f"must be at most {MAX_TEXT_CHARS} characters"
        if self.required and not value.strip():
            return "must not be empty"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        if self.kind == "url" and not _is_http_url(value):
            return "must be an http:// or https:// URL"
        if self.kind == "datetime" and not _is_aware_datetime(value):
            return "must be an ISO 8601 date-time with a time zone"
        return None


@dataclass(frozen=True, slots=True)
class CredentialType:
    """A kind of credential: its name, what it is for, its fields."""

    name: str
    display_name: str
    description: str
    fields: tuple[FieldSpec, ...]

    @property
    def secret_fields(self) -> frozenset[str]:
        return frozenset(spec.name for spec in self.fields if spec.secret)

    def field(self, name: str) -> FieldSpec | None:
        return next((spec for spec in self.fields if spec.name == name), None)

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema (2020-12) of this type's `data`."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.display_name,
            "type": "object",
            "properties": {spec.name: spec.schema() for spec in self.fields},
            "required": [spec.name for spec in self.fields if spec.required],
            "additionalProperties": False,
        }


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


def _is_aware_datetime(value: str) -> bool:
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


_TEST_URL: Final = FieldSpec(
    "test_url",
    "url",
    description="Optional: the test calls this URL with the credential and expects a 2xx.",
)
_HOST: Final = FieldSpec("host", required=True)

CREDENTIAL_TYPES: Final[Mapping[str, CredentialType]] = {
    t.name: t
    for t in (
        CredentialType("api_key", "API key", "A key sent in a header or a query parameter.", (
            FieldSpec("value", required=True, secret=True),
            FieldSpec("name", default="X-API-Key", description="The header or parameter name."),
            FieldSpec("in", default="header", choices=("header", "query")),
            _TEST_URL,
        )),
        CredentialType("bearer", "Bearer token", "`Authorization: Bearer <token>`.", (
            FieldSpec("token", required=True, secret=True),
            _TEST_URL,
        )),
        CredentialType("basic", "Basic auth", "`Authorization: Basic` with user and password.", (
            FieldSpec("username", required=True),
            FieldSpec("password", required=True, secret=True),
            _TEST_URL,
        )),
        CredentialType("header", "Header", "One header sent with every request.", (
            FieldSpec("name", required=True),
            FieldSpec("value", required=True, secret=True),
            _TEST_URL,
        )),
        CredentialType("query", "Query parameter", "One query parameter on every request.", (
            FieldSpec("name", required=True),
            FieldSpec("value", required=True, secret=True),
            _TEST_URL,
        )),
        CredentialType("oauth2", "OAuth2", "Tokens refreshed with the refresh_token grant.", (
            FieldSpec("client_id", required=True),
            FieldSpec("client_secret", secret=True),
            FieldSpec("token_url", "url", required=True),
            FieldSpec("access_token", secret=True),
            FieldSpec("refresh_token", secret=True),
            FieldSpec("expires_at", "datetime", description="When access_token expires."),
            FieldSpec("scope"),
        )),
        CredentialType("smtp", "SMTP", "A mail server (port 465: implicit TLS).", (
            _HOST,
            FieldSpec("port", "integer", default=587, minimum=1, maximum=65535),
            FieldSpec("username"),
            FieldSpec("password", secret=True),
            FieldSpec("starttls", "boolean", default=True),
        )),
        CredentialType("postgres", "PostgreSQL", "A PostgreSQL database.", (
            _HOST,
            FieldSpec("port", "integer", default=5432, minimum=1, maximum=65535),
            FieldSpec("database", required=True),
            FieldSpec("user", required=True),
            FieldSpec("password", secret=True),
            FieldSpec("sslmode", default="prefer", choices=(
                "disable", "allow", "prefer", "require", "verify-ca", "verify-full",
            )),
        )),
    )
}  # fmt: skip


def credential_type(name: str) -> CredentialType:
    """The type called `name`; `Invalid` naming `body.type` when there is none."""
    found = CREDENTIAL_TYPES.get(name)
    if found is None:
        raise Invalid(
            f"there is no credential type {name[:64]!r}",
            code="unknown_credential_type",
            errors=[FieldProblem("body.type", f"must be one of {', '.join(CREDENTIAL_TYPES)}")],
        )
    return found


def validated(kind: CredentialType, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` checked against `kind`, with defaults filled in and None values dropped.

    Raises `Invalid` listing every problem (``body.data.<field>``).
    """
    problems: list[FieldProblem] = []
    out: dict[str, Any] = {}
    for name, value in data.items():
        spec = kind.field(name)
        if spec is None:
            problems.append(FieldProblem(f"body.data.{name}"[:200], "unknown field", "extra"))
        elif value is not None:
            problem = spec.problem(value)
            if problem is None:
                out[name] = value
            else:
                problems.append(FieldProblem(f"body.data.{name}", problem))
    for spec in kind.fields:
        if spec.name in out or any(p.field == f"body.data.{spec.name}" for p in problems):
            continue
        if spec.default is not None:
            out[spec.name] = spec.default
        elif spec.required:
            problems.append(FieldProblem(f"body.data.{spec.name}", "is required", "missing"))
    if problems:
        raise Invalid(f"the {kind.name} credential is not valid", errors=problems)
    return out


def masked(kind: CredentialType, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a read shows: every field of the type, secret ones as `MASK` (None when unset)."""
    out: dict[str, Any] = {}
    for spec in kind.fields:
        value = data.get(spec.name)
        out[spec.name] = MASK if spec.secret and value not in (None, "") else value
    return out


def merged(
    kind: CredentialType, stored: Mapping[str, Any], update: Mapping[str, Any]
) -> dict[str, Any]:
    """`stored` with `update` applied: a field present replaces (None clears it); a field
    absent keeps its stored value; a secret sent back as `MASK` keeps its stored value."""
    out = dict(stored)
    for name, value in update.items():
        spec = kind.field(name)
        if spec is not None and spec.secret and value == MASK:
            continue
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def secret_values(kind: CredentialType, data: Mapping[str, Any]) -> list[str]:
    """The secret values of `data` as text, to scrub from messages that might echo them."""
    values = [str(data[name]) for name in kind.secret_fields if data.get(name)]
    return sorted(values, key=len, reverse=True)
