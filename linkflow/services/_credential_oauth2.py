"""OAuth2 credentials: refreshing an expired access token with the refresh_token grant.

Invariants:
- A token is refreshed when it expires within `EXPIRY_MARGIN` (a request
  that starts with a token about to expire would fail mid-flight), or when
  there is no access token but a refresh token.
- One refresh per credential at a time, across processes: in a process a
  lock per id, and between processes a lease row (`credential_refresh_leases`)
  that the refreshing process holds while it talks to the token endpoint.
  Others wait for its result (polling the row) instead of spending the same
  refresh token: a provider that rotates refresh tokens revokes the whole
  grant when one is used twice (OAuth 2.0 Security BCP, §4.14.2). A lease
  expires after `LEASE_TTL_FACTOR` request timeouts, so a crashed holder
  delays refreshes, it does not stop them. After taking the lock and the
  lease the row is read again, so a refresh that completed meanwhile is used
  (even when its token lives less than the margin: it is not refreshed again).
- New tokens are stored only if the row still holds the refresh token that
  was spent: when it changed meanwhile (another refresh whose lease had
  expired, a reconnect through the consent screen), the stored tokens are
  newer and win. They are written sealed, in a short transaction of their
  own, merged into the row as it is then (an edit of another field is not
  lost), and do not change `updated_at` (which records edits by people).
- The generic `oauth2` type carries its token URL and client in its fields;
  a type that declares an `OAuth2Flow` is refreshed with the instance's
  client for it (`OAuth2Clients`).
- Error messages carry the endpoint's status and OAuth error code only.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.nodes.sdk import NodeError
from linkflow.security.secretbox import SecretBox
from linkflow.services._credential_codec import open_data, seal_data
from linkflow.services._oauth2_clients import OAuth2Clients
from linkflow.store import Credential, CredentialRefreshLease, Database

__all__ = [
    "EXPIRY_MARGIN",
    "OAuth2RefreshError",
    "TokenRefresher",
    "needs_refresh",
    "token_answer",
]

EXPIRY_MARGIN: Final = timedelta(seconds=60)
REFRESH_TIMEOUT_S: Final = 10.0
"""A token endpoint slower than this is down as far as a node run or a test is concerned."""
_MAX_DETAIL_CHARS: Final = 120
LEASE_TTL_FACTOR: Final = 3
"""A refresh lease outlives the token request it covers (one timeout) with room to store."""
LEASE_POLL_S: Final = 0.05
"""How often a process waiting for another's refresh reads the row again."""


class OAuth2RefreshError(Exception):
    """The refresh failed; the message is safe to show (no token, no secret).

    `retryable` is true when trying again later may succeed: the endpoint was
    unreachable, or answered 429 or 5xx.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def _expires_at(data: Mapping[str, Any]) -> datetime | None:
    raw = data.get("expires_at")
    return datetime.fromisoformat(raw) if isinstance(raw, str) and raw else None


def needs_refresh(data: Mapping[str, Any], now: datetime) -> bool:
    """Whether `data`'s access token is missing or about to expire (and can be refreshed)."""
    if not data.get("refresh_token"):
        return False
    if not data.get("access_token"):
        return True
    expires = _expires_at(data)
    return expires is not None and expires - EXPIRY_MARGIN <= now


def _oauth_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    error = str(body.get("error") or "")[:_MAX_DETAIL_CHARS]
    return f": {error}" if error else ""


def token_answer(response: httpx.Response, now: datetime, *, grant: str) -> dict[str, Any]:
    """The token fields of a token endpoint's answer (RFC 6749 §5.1), `expires_in` made
    `expires_at`; `OAuth2RefreshError` naming `grant` and the OAuth error when refused."""
    if response.status_code >= 400:
        raise OAuth2RefreshError(
            f"the token endpoint refused the {grant} (HTTP {response.status_code}"
            f"{_oauth_error(response)})",
            retryable=response.status_code == 429 or response.status_code >= 500,
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise OAuth2RefreshError("the token endpoint's answer has no access_token")
    tokens: dict[str, Any] = {"access_token": body["access_token"], "expires_at": None}
    expires_in = body.get("expires_in")
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        tokens["expires_at"] = (now + timedelta(seconds=float(expires_in))).isoformat()
    if isinstance(body.get("refresh_token"), str) and body["refresh_token"]:
        tokens["refresh_token"] = body["refresh_token"]
    if isinstance(body.get("scope"), str):
        tokens["scope"] = body["scope"]
    return tokens


def _settled(current: Mapping[str, Any], seen: Mapping[str, Any]) -> bool:
    """Whether `current` (the row now) needs no refresh by the caller who saw `seen`: it
    is fresh, or another refresh replaced the access token meanwhile and that one has
    not expired (a provider whose tokens live less than `EXPIRY_MARGIN` would otherwise
    have each waiting caller refresh once more)."""
    now = datetime.now(UTC)
    if not needs_refresh(current, now):
        return True
    token = current.get("access_token")
    if not token or token == seen.get("access_token"):
        return False
    expires = _expires_at(current)
    return expires is None or expires > now


def _process_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class TokenRefresher:
    """Refreshes OAuth2 credentials of any workspace and stores the new tokens sealed."""

    def __init__(
        self,
        database: Database,
        box: SecretBox,
        http: httpx.AsyncClient,
        *,
        timeout_s: float = REFRESH_TIMEOUT_S,
        clients: OAuth2Clients | None = None,
    ) -> None:
        """`clients`: the instance's OAuth clients of connected types (none: only the
        generic `oauth2` type, which carries its own, is refreshed)."""
        self.database = database
        self.box = box
        self.http = http
        self.timeout_s = timeout_s
        self.clients = clients
        self.holder = _process_name()
        self._locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def refreshes(self, kind: str) -> bool:
        """Whether credentials of type `kind` hold OAuth2 tokens this refresher keeps fresh."""
        return kind == "oauth2" or (self.clients is not None and self.clients.connectable(kind))

    async def fresh(
        self,
        credential_id: uuid.UUID,
        workspace_id: uuid.UUID,
        data: dict[str, Any],
        *,
        kind: str = "oauth2",
    ) -> dict[str, Any]:
        """`data` itself when its access token is good, else refreshed (and stored) data.

        Raises `OAuth2RefreshError` when the refresh fails, `LookupError` when
        the credential disappeared meanwhile.
        """
        if not needs_refresh(data, datetime.now(UTC)):
            return data
        lock = self._locks.get(credential_id)
        if lock is None:
            lock = self._locks[credential_id] = asyncio.Lock()
        async with lock:
            give_up = time.monotonic() + self.timeout_s * LEASE_TTL_FACTOR
            while True:
                current = await self._load(credential_id, workspace_id)
                if _settled(current, data):
                    return current
                if await self._claim(credential_id):
                    try:
                        return await self._refresh(credential_id, workspace_id, kind, data)
                    finally:
                        await self._release(credential_id)
                if time.monotonic() > give_up:
                    raise OAuth2RefreshError(
                        "another process is refreshing the token and has not finished",
                        retryable=True,
                    )
                await asyncio.sleep(LEASE_POLL_S)

    async def _refresh(
        self, credential_id: uuid.UUID, workspace_id: uuid.UUID, kind: str,
        seen: Mapping[str, Any],
    ) -> dict[str, Any]:  # fmt: skip
        """The refresh itself, under the lease: the row is read again first."""
        current = await self._load(credential_id, workspace_id)
        if _settled(current, seen):
            return current
        spent = current.get("refresh_token")
        try:
            tokens = await self._request(kind, current)
        except OAuth2RefreshError:
            again = await self._load(credential_id, workspace_id)
            rotated = again.get("refresh_token") != spent
            if rotated and not needs_refresh(again, datetime.now(UTC)):
                return again
            raise
        return await self._store(credential_id, workspace_id, tokens, spent=spent)

    async def _claim(self, credential_id: uuid.UUID) -> bool:
        """Take the credential's refresh lease (an expired one is taken over)."""
        now = datetime.now(UTC)
        lease = CredentialRefreshLease(
            credential_id=credential_id, holder=self.holder,
            expires_at=now + timedelta(seconds=self.timeout_s * LEASE_TTL_FACTOR),
        )  # fmt: skip
        try:
            async with self.database.transaction() as session:
                await session.execute(
                    delete(CredentialRefreshLease).where(
                        CredentialRefreshLease.credential_id == credential_id,
                        CredentialRefreshLease.expires_at < now,
                    )
                )
                session.add(lease)
        except IntegrityError:  # held by another process (or the credential is gone)
            return False
        return True

    async def _release(self, credential_id: uuid.UUID) -> None:
        async with self.database.transaction() as session:
            await session.execute(
                delete(CredentialRefreshLease).where(
                    CredentialRefreshLease.credential_id == credential_id,
                    CredentialRefreshLease.holder == self.holder,
                )
            )

    def _endpoint(self, kind: str, data: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
        """The token URL and the client's fields for refreshing a `kind` credential."""
        if kind == "oauth2":
            client = {"client_id": str(data.get("client_id") or "")}
            if data.get("client_secret"):
                client["client_secret"] = str(data["client_secret"])
            return str(data["token_url"]), client
        resolved = self.clients.client(kind) if self.clients is not None else None
        if resolved is None:
            raise OAuth2RefreshError(
                f"no OAuth client is configured for {kind} credentials (LINKFLOW_OAUTH2_CLIENTS)"
            )
        return resolved.token_url, resolved.client_form()

    async def _request(self, kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
        token_url, client = self._endpoint(kind, data)
        form = {"grant_type": "refresh_token", "refresh_token": str(data["refresh_token"]),
                **client}  # fmt: skip
        if data.get("scope"):
            form["scope"] = str(data["scope"])
        try:
            response = await self.http.post(
                token_url, data=form, headers={"Accept": "application/json"},
                timeout=self.timeout_s,
            )  # fmt: skip
        except NodeError as error:  # the SSRF guard's refusal
            raise OAuth2RefreshError(str(error)) from None
        except httpx.HTTPError as error:
            raise OAuth2RefreshError(
                f"the token endpoint cannot be reached ({type(error).__name__})", retryable=True
            ) from None
        return token_answer(response, datetime.now(UTC), grant="refresh")

    async def _load(self, credential_id: uuid.UUID, workspace_id: uuid.UUID) -> dict[str, Any]:
        async with self.database.session() as session:
            row = await _live(session, credential_id, workspace_id, lock=False)
            return open_data(self.box, row)

    async def _store(
        self,
        credential_id: uuid.UUID,
        workspace_id: uuid.UUID,
        tokens: Mapping[str, Any],
        *,
        spent: object,
    ) -> dict[str, Any]:
        async with self.database.transaction() as session:
            row = await _live(session, credential_id, workspace_id, lock=True)
            stored = open_data(self.box, row)
            if stored.get("refresh_token") != spent:  # newer tokens arrived meanwhile
                return stored
            data = {**stored, **tokens}
            if data.get("expires_at") is None:
                data.pop("expires_at", None)
            await session.execute(
                update(Credential)
                .where(Credential.id == credential_id)
                .values(
                    data_encrypted=seal_data(self.box, credential_id, data),
                    key_id=self.box.current_key_id,
                    updated_at=Credential.updated_at,
                )
            )
            return data


async def _live(
    session: AsyncSession, credential_id: uuid.UUID, workspace_id: uuid.UUID, *, lock: bool
) -> Credential:
    statement = select(Credential).where(
        Credential.id == credential_id,
        Credential.workspace_id == workspace_id,
        Credential.deleted_at.is_(None),
    )
    if lock:
        statement = statement.with_for_update()
    row: Credential | None = (await session.scalars(statement)).one_or_none()
    if row is None:
        raise LookupError(str(credential_id))
    return row
