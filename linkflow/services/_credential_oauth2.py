"""OAuth2 credentials: refreshing an expired access token with the refresh_token grant.

Invariants:
- A token is refreshed when it expires within `EXPIRY_MARGIN` (a request
  that starts with a token about to expire would fail mid-flight), or when
  there is no access token but a refresh token.
- One refresh per credential at a time in a process (a lock per id); after
  taking the lock the row is read again, so tasks that queued behind a
  refresh use its result instead of spending the refresh token twice.
  Across processes, a refresh that fails after another process rotated the
  refresh token is rescued by reading the row again.
- New tokens are written sealed, in a short transaction of their own, merged
  into the row as it is then (an edit of another field is not lost), and do
  not change `updated_at` (which records edits by people).
- Error messages carry the endpoint's status and OAuth error code only.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.nodes.sdk import NodeError
from linkflow.security.secretbox import SecretBox
from linkflow.services._credential_codec import open_data, seal_data
from linkflow.store import Credential, Database

__all__ = ["EXPIRY_MARGIN", "OAuth2RefreshError", "TokenRefresher", "needs_refresh"]

EXPIRY_MARGIN: Final = timedelta(seconds=60)
REFRESH_TIMEOUT_S: Final = 10.0
"""A token endpoint slower than this is down as far as a node run or a test is concerned."""
_MAX_DETAIL_CHARS: Final = 120


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


def _tokens(response: httpx.Response, now: datetime) -> dict[str, Any]:
    if response.status_code >= 400:
        raise OAuth2RefreshError(
            f"the token endpoint refused the refresh (HTTP {response.status_code}"
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


class TokenRefresher:
    """Refreshes OAuth2 credentials of any workspace and stores the new tokens sealed."""

    def __init__(
        self,
        database: Database,
        box: SecretBox,
        http: httpx.AsyncClient,
        *,
        timeout_s: float = REFRESH_TIMEOUT_S,
    ) -> None:
        self.database = database
        self.box = box
        self.http = http
        self.timeout_s = timeout_s
        self._locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def fresh(
        self, credential_id: uuid.UUID, workspace_id: uuid.UUID, data: dict[str, Any]
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
            current = await self._load(credential_id, workspace_id)
            if not needs_refresh(current, datetime.now(UTC)):
                return current
            try:
                tokens = await self._request(current)
            except OAuth2RefreshError:
                again = await self._load(credential_id, workspace_id)
                rotated = again.get("refresh_token") != current.get("refresh_token")
                if rotated and not needs_refresh(again, datetime.now(UTC)):
                    return again
                raise
            return await self._store(credential_id, workspace_id, tokens)

    async def _request(self, data: Mapping[str, Any]) -> dict[str, Any]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": str(data["refresh_token"]),
            "client_id": str(data.get("client_id") or ""),
        }
        if data.get("client_secret"):
            form["client_secret"] = str(data["client_secret"])
        if data.get("scope"):
            form["scope"] = str(data["scope"])
        try:
            response = await self.http.post(
                str(data["token_url"]), data=form, headers={"Accept": "application/json"},
                timeout=self.timeout_s,
            )  # fmt: skip
        except NodeError as error:  # the SSRF guard's refusal
            raise OAuth2RefreshError(str(error)) from None
        except httpx.HTTPError as error:
            raise OAuth2RefreshError(
                f"the token endpoint cannot be reached ({type(error).__name__})", retryable=True
            ) from None
        return _tokens(response, datetime.now(UTC))

    async def _load(self, credential_id: uuid.UUID, workspace_id: uuid.UUID) -> dict[str, Any]:
        async with self.database.session() as session:
            row = await _live(session, credential_id, workspace_id, lock=False)
            return open_data(self.box, row)

    async def _store(
        self, credential_id: uuid.UUID, workspace_id: uuid.UUID, tokens: Mapping[str, Any]
    ) -> dict[str, Any]:
        async with self.database.transaction() as session:
            row = await _live(session, credential_id, workspace_id, lock=True)
            data = {**open_data(self.box, row), **tokens}
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
