"""Connecting an OAuth2 credential through the provider's consent screen.

Flow (RFC 6749 authorization code, with PKCE S256, RFC 7636): `authorize`
checks the type and the caller, stores a connection in progress
(`oauth2_connect_states`) and answers the provider's authorize URL; the
browser comes back to `callback` with `code` and `state`, which redeems the
code at the token endpoint (with the verifier and the instance's client) and
seals the tokens into a new credential, or into the one being reconnected.

Invariants:
- `state` is 256 random bits, stored as its SHA-256 only, single-use (the row
  is taken in the callback's first transaction, whatever happens next),
  expiring (`LINKFLOW_OAUTH2_STATE_TTL_S`) and bound to the user and
  workspace that started it; at the callback that user must still be allowed
  to write credentials there.
- A forged, reused or expired state (`oauth2_state_invalid`), an error the
  provider sent back (`oauth2_access_denied`, `oauth2_provider_error`) and a
  failed exchange (`oauth2_exchange_failed`) each refuse the callback and
  create or change nothing.
- Tokens go through `Credentials.create`/`update`, so they are validated,
  sealed, masked on every read and audited like any credential write; no
  token, code or verifier is logged or put in an error.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import delete, select

from linkflow.nodes.sdk import NodeError
from linkflow.security.rbac import Permission
from linkflow.services._credential_oauth2 import OAuth2RefreshError, token_answer
from linkflow.services._oauth2_clients import OAuth2Clients, ResolvedClient
from linkflow.services.authentication import resolve_workspace
from linkflow.services.context import Actor, Principal, RequestInfo, WorkspaceAccess
from linkflow.services.credential_types import credential_type
from linkflow.services.credentials import Credentials, CredentialView
from linkflow.services.errors import BadRequest, Conflict, FieldProblem, Invalid, NotFound
from linkflow.store import CredentialRepository, Database, OAuth2ConnectState, User

__all__ = ["CALLBACK_PATH", "OAuth2Connect"]

CALLBACK_PATH: Final = "/api/v1/credentials/oauth2/callback"
EXCHANGE_TIMEOUT_S: Final = 10.0
"""A token endpoint slower than this fails the connection; the user can start again."""
_MAX_PROVIDER_TEXT: Final = 200


@dataclass(frozen=True, slots=True)
class _Started:
    """What a connection in progress recorded, taken from its row."""

    workspace_id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    name: str | None
    credential_id: uuid.UUID | None
    verifier: str
    redirect_uri: str


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _state_invalid() -> BadRequest:
    return BadRequest(
        "the OAuth2 state is unknown, used or expired: start connecting the credential again",
        code="oauth2_state_invalid",
    )


def _provider_refused(error: str, description: str | None) -> BadRequest:
    shown = error[:64]
    reason = f": {description[:_MAX_PROVIDER_TEXT]}" if description else ""
    if shown == "access_denied":
        return BadRequest(
            f"the provider's consent was refused (access_denied){reason}",
            code="oauth2_access_denied",
        )
    return BadRequest(f"the provider refused the authorization ({shown}){reason}",
                      code="oauth2_provider_error")  # fmt: skip


class OAuth2Connect:
    """The use cases of `/api/v1/credentials/oauth2`."""

    def __init__(
        self,
        database: Database,
        credentials: Credentials,
        clients: OAuth2Clients,
        http: httpx.AsyncClient,
        *,
        public_url: str,
        done_url: str | None = None,
        state_ttl: timedelta = timedelta(minutes=10),
        timeout_s: float = EXCHANGE_TIMEOUT_S,
    ) -> None:
        """`http` reaches the token endpoints (the process's guarded client); `done_url`
        is where the browser goes once connected (None: the callback answers JSON)."""
        self.database = database
        self.credentials = credentials
        self.clients = clients
        self.http = http
        self.redirect_uri = public_url.rstrip("/") + CALLBACK_PATH
        self.done_url = done_url
        self.state_ttl = state_ttl
        self.timeout_s = timeout_s

    def _client(self, kind: str) -> ResolvedClient:
        declared = credential_type(self.credentials.known, kind)
        if declared.oauth2 is None:
            raise Invalid(
                f"{kind} credentials are not connected through OAuth2",
                code="not_oauth2_type",
            )
        client = self.clients.client(kind)
        if client is None:
            raise Conflict(
                f"no OAuth client is configured for {kind} credentials: an administrator "
                "sets LINKFLOW_OAUTH2_CLIENTS",
                code="oauth2_client_not_configured",
            )
        return client

    async def authorize(
        self,
        access: WorkspaceAccess,
        kind: str,
        *,
        name: str | None = None,
        credential_id: uuid.UUID | None = None,
    ) -> str:
        """The provider's authorize URL for connecting a new credential called `name`,
        or for reconnecting `credential_id` (exactly one of them)."""
        access.require(Permission.CREDENTIALS_WRITE)
        client = self._client(kind)
        if (name is None) == (credential_id is None):
            raise Invalid(
                "name a new credential or give the id of one to reconnect, not both",
                errors=[FieldProblem("query.name", "give name or credential_id"),
                        FieldProblem("query.credential_id", "give name or credential_id")],
            )  # fmt: skip
        if credential_id is not None:
            existing = await self.credentials.get(access, credential_id)
            if existing.type != kind:
                raise Invalid(
                    f"credential {credential_id} is a {existing.type} credential, not {kind}",
                    code="credential_type_mismatch",
                    errors=[FieldProblem("query.credential_id", f"must be a {kind} credential")],
                )
        elif await self._name_taken(access, name or ""):
            raise Conflict(f"a credential named {name!r} exists already",
                           code="credential_exists")  # fmt: skip
        state, verifier = generate_token(48), generate_token(64)
        now = datetime.now(UTC)
        async with self.database.transaction() as session:
            await session.execute(
                delete(OAuth2ConnectState).where(OAuth2ConnectState.expires_at < now)
            )
            session.add(OAuth2ConnectState(
                state_hash=_state_hash(state), workspace_id=access.workspace_id,
                user_id=access.principal.user_id, credential_type=kind,
                credential_name=name.strip() if name is not None else None,
                credential_id=credential_id, code_verifier=verifier,
                redirect_uri=self.redirect_uri, expires_at=now + self.state_ttl,
            ))  # fmt: skip
        url: str = prepare_grant_uri(
            client.authorize_url,
            client.client_id,
            "code",
            redirect_uri=self.redirect_uri,
            scope=" ".join(client.scopes) or None,
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
            **dict(client.authorize_params),
        )
        return url

    async def callback(
        self,
        request: RequestInfo,
        *,
        state: str | None,
        code: str | None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> CredentialView:
        """Finish a connection: the credential created or reconnected (see the module)."""
        if not state:
            raise _state_invalid()
        started = await self._take(state)
        if error is not None:
            raise _provider_refused(error, error_description)
        if not code:
            raise BadRequest(
                "the provider sent no authorization code", code="oauth2_provider_error"
            )
        access = await self._access(started)
        actor = Actor(user_id=started.user_id, api_key_id=None, request=request)
        client = self._client(started.kind)
        tokens = await self._exchange(client, started, code)
        if started.credential_id is not None:
            return await self.credentials.update(
                access, actor, started.credential_id, data=tokens
            )
        assert started.name is not None
        return await self.credentials.create(
            access, actor, name=started.name, type=started.kind, data=tokens
        )

    async def _name_taken(self, access: WorkspaceAccess, name: str) -> bool:
        async with self.database.session() as session:
            found = await CredentialRepository(session, access.workspace_id).get_by_name(
                name.strip()
            )
        return found is not None

    async def _take(self, state: str) -> _Started:
        """The connection `state` names, deleted (single use); refused when unknown or expired."""
        async with self.database.transaction() as session:
            row = (
                await session.scalars(
                    select(OAuth2ConnectState)
                    .where(OAuth2ConnectState.state_hash == _state_hash(state))
                    .with_for_update()
                )
            ).one_or_none()
            if row is None:
                raise _state_invalid()
            await session.delete(row)
            started = _Started(
                workspace_id=row.workspace_id, user_id=row.user_id, kind=row.credential_type,
                name=row.credential_name, credential_id=row.credential_id,
                verifier=row.code_verifier, redirect_uri=row.redirect_uri,
            )  # fmt: skip
            expired = row.expires_at <= datetime.now(UTC)
        if expired:
            raise _state_invalid()
        return started

    async def _access(self, started: _Started) -> WorkspaceAccess:
        """What the user who started may do in the workspace now (a role may have changed)."""
        async with self.database.session() as session:
            user = await session.get(User, started.user_id)
        if user is None or user.deleted_at is not None:
            raise _state_invalid()
        try:
            access = await resolve_workspace(self.database, Principal(user=user),
                                             started.workspace_id)  # fmt: skip
        except NotFound:
            raise _state_invalid() from None
        access.require(Permission.CREDENTIALS_WRITE)
        return access

    async def _exchange(
        self, client: ResolvedClient, started: _Started, code: str
    ) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": started.redirect_uri, "code_verifier": started.verifier,
            **client.client_form(),
        }  # fmt: skip
        try:
            response = await self.http.post(
                client.token_url, data=form, headers={"Accept": "application/json"},
                timeout=self.timeout_s,
            )  # fmt: skip
            tokens = token_answer(response, datetime.now(UTC), grant="authorization code")
        except OAuth2RefreshError as refused:
            raise BadRequest(str(refused), code="oauth2_exchange_failed") from None
        except NodeError as guard:  # the SSRF guard's refusal of the token URL
            raise BadRequest(guard.message, code="oauth2_exchange_failed") from None
        except httpx.HTTPError as failure:
            raise BadRequest(
                f"the token endpoint cannot be reached ({type(failure).__name__})",
                code="oauth2_exchange_failed",
            ) from None
        return {key: value for key, value in tokens.items() if value is not None}
