"""What `POST /credentials/{id}/test` does for each type.

- api_key, bearer, basic, header, query: the fields are already known to be
  complete (they were validated on write); with a `test_url`, a GET to it
  with the credential applied must answer 2xx.
- smtp: connect, EHLO, STARTTLS when asked (implicit TLS on port 465), log in
  when a username is set.
- postgres: connect with asyncpg and ``SELECT 1``.
- oauth2: the access token is unexpired, or a refresh works (and is stored).

Invariants:
- A failed check is a `CheckResult` with ``ok=False`` and a reason, never an
  exception: the caller answers 200 either way.
- Every connection has a timeout, and its host passes the same address
  policy as nodes' HTTP requests (`linkflow.security.ssrf`), so whoever may
  test credentials cannot probe the private network unless the operator
  allows it. (SMTP and PostgreSQL connect by name after the check, so a DNS
  answer that changes in between is not caught; HTTP is checked at connect.)
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]
import httpcore
import httpx

from linkflow.nodes.sdk import NodeError
from linkflow.security.ssrf import AddressPolicy, GuardedBackend
from linkflow.services._credential_oauth2 import OAuth2RefreshError, TokenRefresher
from linkflow.store import Credential

__all__ = ["CHECK_TIMEOUT_S", "CheckResult", "CredentialChecks"]

CHECK_TIMEOUT_S: Final = 10.0
"""Per connection step: a server slower than this fails the test rather than hang the request."""
SMTPS_PORT: Final = 465
_HTTP_TYPES: Final = frozenset({"api_key", "bearer", "basic", "header", "query"})


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    message: str


def http_auth(kind: str, data: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The headers and query parameters that apply `data` (as the http_request node does)."""
    if kind == "basic":
        user_pass = f"{data['username']}:{data['password']}".encode()
        return {"Authorization": f"Basic {base64.b64encode(user_pass).decode()}"}, {}
    if kind == "bearer":
        return {"Authorization": f"Bearer {data['token']}"}, {}
    if kind in {"header", "query"}:
        pair = {str(data["name"]): str(data["value"])}
        return (pair, {}) if kind == "header" else ({}, pair)
    name, value = str(data.get("name") or "X-API-Key"), str(data["value"])
    return ({}, {name: value}) if data.get("in") == "query" else ({name: value}, {})


def _smtp_session(data: Mapping[str, Any], timeout_s: float) -> str:
    host, port = str(data["host"]), int(data["port"])
    smtp: smtplib.SMTP
    if port == SMTPS_PORT:
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout_s,
                                context=ssl.create_default_context())  # fmt: skip
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout_s)
    with smtp:
        smtp.ehlo()
        if data.get("starttls") and port != SMTPS_PORT:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if data.get("username"):
            smtp.login(str(data["username"]), str(data.get("password") or ""))
            return f"logged in to {host}:{port} as {data['username']}"
        smtp.noop()
        return f"connected to {host}:{port}"


def _smtp_failure(error: Exception) -> str:
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"the server refused the login ({error.smtp_code})"
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return f"the server does not support this: {error}"[:200]
    if isinstance(error, smtplib.SMTPResponseException):
        return f"the server answered {error.smtp_code}"
    if isinstance(error, smtplib.SMTPException):
        return f"SMTP failed ({type(error).__name__})"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed ({error.reason or type(error).__name__})"
    if isinstance(error, TimeoutError):
        return "timed out"
    return getattr(error, "strerror", None) or type(error).__name__


class CredentialChecks:
    """Runs the check of a credential's type against the outside world."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        policy: AddressPolicy,
        refresher: TokenRefresher,
        *,
        timeout_s: float = CHECK_TIMEOUT_S,
    ) -> None:
        self.http = http
        self.guard = GuardedBackend(policy)
        self.refresher = refresher
        self.timeout_s = timeout_s

    async def run(self, credential: Credential, kind: str, data: dict[str, Any]) -> CheckResult:
        """Check `data` (the decrypted fields of `credential`, a row) of type `kind`."""
        if kind in _HTTP_TYPES:
            return await self._http(kind, data)
        if kind == "smtp":
            return await self._smtp(data)
        if kind == "postgres":
            return await self._postgres(data)
        if kind == "oauth2":
            return await self._oauth2(credential, data)
        return CheckResult(False, f"there is no check for {kind} credentials")

    async def _vet(self, host: str, port: int) -> str | None:
        """Why `host` may not be reached, or None."""
        try:
            await self.guard.resolve(host, port, timeout_s=self.timeout_s)
        except NodeError as error:
            return str(error)
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
            return str(error) or "cannot resolve the host"
        return None

    async def _http(self, kind: str, data: dict[str, Any]) -> CheckResult:
        url = data.get("test_url")
        if not url:
            return CheckResult(True, "the fields are complete (set test_url to try them on a URL)")
        headers, query = http_auth(kind, data)
        try:
            response = await self.http.get(
                str(url), headers=headers, params=query, timeout=self.timeout_s
            )
        except NodeError as error:
            return CheckResult(False, str(error))
        except httpx.HTTPError as error:
            return CheckResult(False, f"{url} cannot be reached ({type(error).__name__})")
        if response.is_success:
            return CheckResult(True, f"{url} accepted the credential (HTTP {response.status_code})")
        return CheckResult(False, f"{url} answered HTTP {response.status_code}")

    async def _smtp(self, data: dict[str, Any]) -> CheckResult:
        refusal = await self._vet(str(data["host"]), int(data["port"]))
        if refusal is not None:
            return CheckResult(False, refusal)
        try:
            return CheckResult(True, await asyncio.to_thread(_smtp_session, data, self.timeout_s))
        except (smtplib.SMTPException, OSError) as error:
            where = f"{data['host']}:{data['port']}"
            return CheckResult(False, f"SMTP check against {where} failed: {_smtp_failure(error)}")

    async def _postgres(self, data: dict[str, Any]) -> CheckResult:
        host, port = str(data["host"]), int(data["port"])
        refusal = await self._vet(host, port)
        if refusal is not None:
            return CheckResult(False, refusal)
        try:
            connection = await asyncpg.connect(
                host=host, port=port, user=data["user"], password=data.get("password"),
                database=data["database"], ssl=data.get("sslmode", "prefer"),
                timeout=self.timeout_s,
            )  # fmt: skip
            try:
                async with asyncio.timeout(self.timeout_s):
                    await connection.fetchval("SELECT 1")
            finally:
                await connection.close(timeout=self.timeout_s)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            return CheckResult(False, f"PostgreSQL refused: {str(error)[:200]}")
        except TimeoutError:
            return CheckResult(False, f"PostgreSQL at {host}:{port}: timed out")
        except OSError as error:
            reason = error.strerror or type(error).__name__
            return CheckResult(False, f"cannot connect to PostgreSQL at {host}:{port}: {reason}")
        return CheckResult(True, f"connected to {data['database']} at {host}:{port} (SELECT 1)")

    async def _oauth2(self, credential: Credential, data: dict[str, Any]) -> CheckResult:
        if not data.get("access_token") and not data.get("refresh_token"):
            return CheckResult(False, "there is neither an access token nor a refresh token")
        try:
            fresh = await self.refresher.fresh(credential.id, credential.workspace_id, data)
        except OAuth2RefreshError as error:
            return CheckResult(False, str(error))
        except LookupError:
            return CheckResult(False, "the credential was deleted meanwhile")
        refreshed = fresh.get("access_token") != data.get("access_token")
        until = fresh.get("expires_at")
        if refreshed:
            return CheckResult(True, f"the token was refreshed (valid until {until or 'unknown'})")
        if until is None:
            return CheckResult(True, "there is an access token (its expiry is unknown)")
        if not data.get("refresh_token") and _expired(until):
            return CheckResult(False, "the access token expired and there is no refresh token")
        return CheckResult(True, f"the access token is valid until {until}")


def _expired(expires_at: str) -> bool:
    return datetime.fromisoformat(expires_at) <= datetime.now(UTC)
