"""Credential types as node authors declare them: fields, which are secret, a check.

An integration module declares its credential types beside its node types
(`CREDENTIALS = (CredentialType(...),)`), and the registry collects both, so
adding an integration changes no other file. What is declared here is data
and one optional coroutine; storing, masking and sealing credentials is the
control plane's business, which reads these declarations from the registry.

Invariants:
- A field is `secret` or it is shown in clear on every read: there is no
  third kind, so a token-like field must be declared secret.
- `problem` never quotes the value it refuses (it may be a secret).
- A check (`CredentialType.check`) gets the decrypted fields and a
  `CheckContext`, reaches the service through the context only (so the SSRF
  guard applies), and either returns what it verified or raises `NodeError`
  with a reason; it never puts a secret value in either.
- A type that declares `oauth2` (an `OAuth2Flow`: the provider's authorize and
  token URLs, its scopes) is connected through the browser
  (`/credentials/oauth2/{type}/authorize`) and refreshed with the instance's
  OAuth client of that provider; its tokens are the fields `access_token`,
  `refresh_token`, `expires_at` and `scope`, which such a type must declare.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import httpx

__all__ = [
    "MAX_TEXT_CHARS",
    "AddressGuard",
    "CheckContext",
    "CredentialCheck",
    "CredentialField",
    "CredentialType",
    "FieldKind",
    "OAuth2Flow",
]

MAX_TEXT_CHARS: Final = 16 * 1024
"""Long enough for any token we know of (JWTs, PEM-free API keys), short enough to bound a row."""

FieldKind = Literal["string", "url", "integer", "boolean", "datetime"]


class AddressGuard(Protocol):
    """The SSRF guard for connections that are not HTTP (databases, SMTP, Redis)."""

    async def resolve(self, host: str, port: int, *, timeout_s: float) -> Sequence[str]:
        """The addresses of `host` that may be connected to, every one vetted.

        Raises a non-retryable `NodeError` when the process's address policy
        refuses one of them (e.g. a private address while private networks are
        not allowed), a retryable one when the name does not resolve in time.
        """
        ...


class CheckContext(Protocol):
    """What a credential check may use: the guarded ways out, and its time budget."""

    @property
    def timeout_s(self) -> float:
        """Each step (resolve, connect, one command) must finish within this."""
        ...

    def http(self) -> httpx.AsyncClient:
        """The SSRF-guarded HTTP client."""
        ...

    async def resolve_host(self, host: str, port: int) -> Sequence[str]:
        """`AddressGuard.resolve` with the check's timeout."""
        ...


CredentialCheck = Callable[[CheckContext, Mapping[str, Any]], Awaitable[str]]
"""`check(ctx, data) -> what was verified`; raises `NodeError` with the reason it failed."""


@dataclass(frozen=True, slots=True)
class CredentialField:
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
class OAuth2Flow:
    """Where a provider's OAuth2 authorization-code flow happens (RFC 6749, with PKCE).

    The URLs are the provider's public ones; an operator overrides them per type
    (`LINKFLOW_OAUTH2_CLIENTS`), which is also how tests point them at a loopback
    server. `authorize_params` are sent as they are to the authorize endpoint
    (Google needs ``access_type=offline`` and ``prompt=consent`` to hand out a
    refresh token).
    """

    authorize_url: str
    token_url: str
    scopes: tuple[str, ...] = ()
    authorize_params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CredentialType:
    """A kind of credential: its name, what it is for, its fields, how to test it.

    `check` is what `POST /credentials/{id}/test` runs: one cheap call to the
    service (a PING, a ``SELECT 1``, an SMTP login). None: the test only says
    that the fields are complete.

    `oauth2`: the type is connected through the provider's consent screen (see
    `OAuth2Flow`); its fields then include the token fields.
    """

    name: str
    display_name: str
    description: str
    fields: tuple[CredentialField, ...]
    check: CredentialCheck | None = None
    oauth2: OAuth2Flow | None = None

    @property
    def secret_fields(self) -> frozenset[str]:
        return frozenset(spec.name for spec in self.fields if spec.secret)

    def field(self, name: str) -> CredentialField | None:
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
