"""What `POST /credentials/{id}/test` does for each type.

- A type that declares a check (`CredentialType.check`, beside its nodes:
  the SMTP, PostgreSQL and Redis integrations' log in, ``SELECT 1``, PING)
  runs it, with the guarded HTTP client and address guard of this process.
- api_key, bearer, basic, header, query: the fields are already known to be
  complete (they were validated on write); with a `test_url`, a GET to it
  with the credential applied must answer 2xx.
- oauth2, and types connected through a provider (`google_oauth2`...): the
  access token is unexpired, or a refresh works (and is stored).

Invariants:
- A failed check is a `CheckResult` with ``ok=False`` and a reason, never an
  exception: the caller answers 200 either way. A declared check is foreign
  code as far as this module knows (a plugin's): whatever it raises is a
  failed check, and it is given `CHECK_TIMEOUT_S` per step and
  `CHECK_BUDGET_STEPS` steps' time in all.
- Every connection has a timeout, and its host passes the same address
  policy as nodes' HTTP requests (`linkflow.security.ssrf`), so whoever may
  test credentials cannot probe the private network unless the operator
  allows it.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from linkflow.nodes.sdk import CredentialType, NodeError
from linkflow.observability.logging import get_logger
from linkflow.security.ssrf import AddressPolicy, HostGuard
from linkflow.services._credential_oauth2 import OAuth2RefreshError, TokenRefresher
from linkflow.store import Credential

__all__ = ["CHECK_TIMEOUT_S", "CheckResult", "CredentialChecks"]

log = get_logger(__name__)

CHECK_TIMEOUT_S: Final = 10.0
"""Per connection step: a server slower than this fails the test rather than hang the request."""
CHECK_BUDGET_STEPS: Final = 4
"""Resolve, connect, log in, one command: a check's whole time is this many steps'."""
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


class _CheckContext:
    """The SDK's `CheckContext` of one check."""

    def __init__(self, http: httpx.AsyncClient, guard: HostGuard, timeout_s: float) -> None:
        self._http = http
        self._guard = guard
        self._timeout_s = timeout_s

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    def http(self) -> httpx.AsyncClient:
        return self._http

    async def resolve_host(self, host: str, port: int) -> Sequence[str]:
        return await self._guard.resolve(host, port, timeout_s=self._timeout_s)


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
        self.guard = HostGuard(policy)
        self.refresher = refresher
        self.timeout_s = timeout_s

    async def run(
        self, credential: Credential, kind: CredentialType, data: dict[str, Any]
    ) -> CheckResult:
        """Check `data` (the decrypted fields of `credential`, a row) of type `kind`."""
        if kind.name in _HTTP_TYPES:
            return await self._http(kind.name, data)
        if self.refresher.refreshes(kind.name):
            return await self._oauth2(credential, data)
        if kind.check is not None:
            return await self._declared(credential, kind, data)
        return CheckResult(False, f"there is no check for {kind.name} credentials")

    async def _declared(
        self, credential: Credential, kind: CredentialType, data: dict[str, Any]
    ) -> CheckResult:
        assert kind.check is not None
        context = _CheckContext(self.http, self.guard, self.timeout_s)
        try:
            async with asyncio.timeout(self.timeout_s * CHECK_BUDGET_STEPS):
                return CheckResult(True, await kind.check(context, data))
        except NodeError as error:
            return CheckResult(False, error.message)
        except TimeoutError:
            return CheckResult(False, f"the {kind.name} check timed out")
        except Exception as error:  # noqa: BLE001 - a plugin's check: a failure, not a 500
            log.warning("credentials.check_crashed", credential_id=str(credential.id),
                        type=kind.name, error=type(error).__name__)  # fmt: skip
            return CheckResult(False, f"the {kind.name} check failed ({type(error).__name__})")

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

    async def _oauth2(self, credential: Credential, data: dict[str, Any]) -> CheckResult:
        if not data.get("access_token") and not data.get("refresh_token"):
            return CheckResult(False, "there is neither an access token nor a refresh token")
        try:
            fresh = await self.refresher.fresh(
                credential.id, credential.workspace_id, data, kind=credential.type
            )
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
