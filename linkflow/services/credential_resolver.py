"""The worker's `CredentialResolver`: a node's credential, decrypted when the node runs.

A credential is decrypted only here, at the moment a node asks for it
(`NodeContext.credential`), never copied into an execution's input, events
or outputs by LinkFlow itself.

Invariants:
- Resolution is confined to one workspace: a reference (an id or a name) to
  a credential of another workspace, or a deleted one, raises `LookupError`,
  exactly like one that never existed.
- An OAuth2 credential (the generic `oauth2` type, or one connected through
  a provider) whose access token expires within a minute is refreshed first,
  and the new tokens are stored (`TokenRefresher`).
- `last_used_at` is written at most once per `TOUCH_INTERVAL` per
  credential: skipped when the row says it is recent, and remembered in the
  process so that a burst of node runs issues one UPDATE. Failing to write it
  never fails the node.
- `ExecutionCredentials` is the process-wide form: the worker binds the
  executing workspace in a context variable around each execution
  (`bound(workspace_id)`); asyncio tasks started inside inherit it.
- Every secret value resolved inside `bound` is registered for that execution,
  and `ExecutionCredentials.scrub` (the engine's `SecretScrubber`) replaces them,
  and their URL-encoded and base64 forms, in a node's error before it is stored
  (`_secret_scrubber`): a remote server echoing the request must not put the
  credential in front of every viewer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.exc import DBAPIError

from linkflow.nodes.registry import default_registry
from linkflow.nodes.sdk import NodeError
from linkflow.observability.logging import get_logger
from linkflow.security.secretbox import SecretBox
from linkflow.services._credential_codec import open_data
from linkflow.services._credential_oauth2 import OAuth2RefreshError, TokenRefresher
from linkflow.services._oauth2_clients import OAuth2Clients
from linkflow.services._secret_scrubber import SecretValues
from linkflow.services.credential_types import CredentialTypes
from linkflow.services.errors import Unavailable
from linkflow.store import Credential, Database, StoreUnavailable

__all__ = ["TOUCH_INTERVAL", "ExecutionCredentials", "WorkspaceCredentials"]

log = get_logger(__name__)

TOUCH_INTERVAL: Final = timedelta(minutes=1)
"""`last_used_at` is a hint for people ("used 5 minutes ago"), not an access log."""
_MAX_REMEMBERED: Final = 10_000  # bounds the in-process memory of recent touches

_bound_workspace: ContextVar[uuid.UUID | None] = ContextVar(
    "linkflow_credentials_workspace", default=None
)
_bound_secrets: ContextVar[SecretValues | None] = ContextVar(
    "linkflow_credentials_secrets", default=None
)


class _Touches:
    """When this process last wrote `last_used_at` for each credential (monotonic)."""

    def __init__(self) -> None:
        self._at: dict[uuid.UUID, float] = {}

    def due(self, credential_id: uuid.UUID) -> bool:
        now = time.monotonic()
        last = self._at.get(credential_id)
        if last is not None and now - last < TOUCH_INTERVAL.total_seconds():
            return False
        if len(self._at) >= _MAX_REMEMBERED:
            self._at.clear()
        self._at[credential_id] = now
        return True


def _as_uuid(reference: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(reference)
    except ValueError:
        return None


class WorkspaceCredentials:
    """Resolves credential references of one workspace (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        box: SecretBox,
        workspace_id: uuid.UUID,
        http: httpx.AsyncClient,
        *,
        refresher: TokenRefresher | None = None,
        touches: _Touches | None = None,
    ) -> None:
        self.database = database
        self.box = box
        self.workspace_id = workspace_id
        self.refresher = refresher or TokenRefresher(database, box, http)
        self._touches = touches or _Touches()

    async def resolve(self, reference: str) -> dict[str, Any]:
        """``{"type": ..., **fields}`` of the credential `reference` names (an id or a name)."""
        row = await self._find(reference)
        try:
            data = open_data(self.box, row)
        except Unavailable as error:
            raise NodeError(error.detail, retryable=False) from None
        secrets = _bound_secrets.get()
        if secrets is not None:
            secrets.add(row.type, data)
        if self.refresher.refreshes(row.type):
            data = await self._fresh(row, data)
            if secrets is not None:
                secrets.add(row.type, data)
        await self._touch(row)
        return {"type": row.type, **data}

    async def _find(self, reference: str) -> Credential:
        live = select(Credential).where(
            Credential.workspace_id == self.workspace_id, Credential.deleted_at.is_(None)
        )
        async with self.database.session() as session:
            row_id = _as_uuid(reference)
            row = None
            if row_id is not None:
                row = (await session.scalars(live.where(Credential.id == row_id))).one_or_none()
            if row is None:
                row = (await session.scalars(live.where(Credential.name == reference))).first()
        if row is None:
            raise LookupError(reference)
        return row

    async def _fresh(self, row: Credential, data: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.refresher.fresh(row.id, self.workspace_id, data, kind=row.type)
        except OAuth2RefreshError as error:
            raise NodeError(
                f"credential {row.name!r}: the OAuth2 token could not be refreshed: {error}",
                retryable=error.retryable,
            ) from None

    async def _touch(self, row: Credential) -> None:
        now = datetime.now(UTC)
        recent = row.last_used_at is not None and now - row.last_used_at < TOUCH_INTERVAL
        if recent or not self._touches.due(row.id):
            return
        stale = now - TOUCH_INTERVAL
        statement = (
            update(Credential)
            .where(
                Credential.id == row.id,
                or_(Credential.last_used_at.is_(None), Credential.last_used_at < stale),
            )
            .values(last_used_at=now, updated_at=Credential.updated_at)
        )
        try:
            async with self.database.transaction() as session:
                await session.execute(statement)
        except (DBAPIError, StoreUnavailable) as error:
            log.warning("credential.last_used_not_recorded", credential_id=str(row.id),
                        error=type(error).__name__)  # fmt: skip


class ExecutionCredentials:
    """One resolver per process; the workspace comes from the execution being run.

    The worker wraps each execution in ``with credentials.bound(workspace_id):``.
    Outside of that, every reference is a `LookupError`.
    """

    def __init__(
        self,
        database: Database,
        box: SecretBox,
        http: httpx.AsyncClient,
        *,
        types: CredentialTypes | None = None,
        clients: OAuth2Clients | None = None,
    ) -> None:
        """`types` (default: the built-in ones) say which fields `scrub` hides; `clients`
        are the instance's OAuth clients, which refresh connected credentials."""
        self.database = database
        self.box = box
        self.http = http
        self.types = (
            types if types is not None else default_registry(plugins=False).credential_types
        )
        self.clients = clients or OAuth2Clients(self.types)
        self.refresher = TokenRefresher(database, box, http, clients=self.clients)
        self._touches = _Touches()

    @contextmanager
    def bound(self, workspace_id: uuid.UUID) -> Iterator[None]:
        """Resolve references in `workspace_id` inside the block (and tasks it starts), and
        remember the secrets resolved there for `scrub`."""
        token = _bound_workspace.set(workspace_id)
        secrets = _bound_secrets.set(SecretValues(self.types))
        try:
            yield
        finally:
            _bound_secrets.reset(secrets)
            _bound_workspace.reset(token)

    def scrub(self, text: str) -> str:
        """`text` without the secrets resolved so far in the bound execution."""
        secrets = _bound_secrets.get()
        return text if secrets is None else secrets.scrub(text)

    def for_workspace(self, workspace_id: uuid.UUID) -> WorkspaceCredentials:
        return WorkspaceCredentials(
            self.database, self.box, workspace_id, self.http,
            refresher=self.refresher, touches=self._touches,
        )  # fmt: skip

    async def resolve(self, reference: str) -> dict[str, Any]:
        workspace_id = _bound_workspace.get()
        if workspace_id is None:
            raise LookupError(reference)
        return await self.for_workspace(workspace_id).resolve(reference)
