"""Login with an OAuth provider: the authorization-code flow with PKCE, state and nonce.

Flow: `start` builds the provider's authorize URL and a signed state cookie
(provider, state, nonce, PKCE verifier; 10 minutes). `finish` checks the
returned state against the cookie, redeems the code (with the verifier and
the client secret), learns who the user is (`ProviderDirectory.identify`)
and logs them in.

Invariants:
- A provider identity is linked to one account (`oauth_connections`).
- A new identity joins the existing account with the same e-mail only when
  the provider says the e-mail is verified; an unverified match is a
  `Conflict` (`email_in_use`), never a silent takeover.
- Otherwise a new account (without a password) and its personal workspace
  are created.
- MFA still applies: a linked account with MFA on gets `mfa_required`.
- Provider tokens are not kept: LinkFlow only needs who the user is.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import select

from linkflow.config import OAuthProvider
from linkflow.security.tokens import InvalidToken, SignedTokens
from linkflow.services._oauth_providers import Identity, ProviderDirectory
from linkflow.services.accounts import Accounts
from linkflow.services.audit import record
from linkflow.services.context import Actor, RequestInfo
from linkflow.services.errors import Conflict, NotFound, Unauthorized, Unavailable
from linkflow.services.sessions import IssuedTokens
from linkflow.services.workspaces import create_workspace
from linkflow.store import Database, OAuthConnection, User, UserRepository, utcnow

__all__ = ["STATE_COOKIE", "OAuthLogin", "OAuthStart"]

STATE_COOKIE: Final = "lf_oauth_state"
STATE_TTL: Final = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class OAuthStart:
    authorize_url: str
    state_cookie: str


def _state_refused() -> Unauthorized:
    return Unauthorized(
        "the OAuth state is missing, expired or does not match: start the login again",
        code="invalid_oauth_state",
    )


class OAuthLogin:
    def __init__(
        self,
        database: Database,
        accounts: Accounts,
        providers: dict[str, OAuthProvider],
        http: httpx.AsyncClient,
        signed: SignedTokens,
        public_url: str,
    ) -> None:
        self.database = database
        self.accounts = accounts
        self.providers = providers
        self.http = http
        self.signed = signed
        self.public_url = public_url.rstrip("/")
        self.directory = ProviderDirectory(providers, http)

    def _config(self, name: str) -> OAuthProvider:
        config = self.providers.get(name)
        if config is None:
            raise NotFound(f"no OAuth provider {name!r} is configured", code="unknown_provider")
        return config

    def redirect_uri(self, name: str) -> str:
        return f"{self.public_url}/api/v1/auth/oauth/{name}/callback"

    async def start(self, name: str) -> OAuthStart:
        config = self._config(name)
        endpoints = await self.directory.endpoints(name)
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        url = prepare_grant_uri(
            endpoints.authorize_url,
            config.client_id,
            "code",
            redirect_uri=self.redirect_uri(name),
            scope=" ".join(endpoints.scopes),
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
            **({"nonce": nonce} if endpoints.kind == "oidc" else {}),
        )
        cookie = self.signed.issue(
            "oauth",
            {"provider": name, "state": state, "nonce": nonce, "verifier": verifier},
            STATE_TTL,
        )
        return OAuthStart(authorize_url=url, state_cookie=cookie)

    async def finish(
        self, name: str, code: str, state: str, cookie: str | None, request: RequestInfo
    ) -> tuple[User, IssuedTokens]:
        config = self._config(name)
        try:
            saved = self.signed.read("oauth", cookie or "")
        except InvalidToken:
            raise _state_refused() from None
        if saved.get("provider") != name or not hmac.compare_digest(saved.get("state", ""), state):
            raise _state_refused()
        endpoints = await self.directory.endpoints(name)
        tokens = await self._redeem(config, endpoints.token_url, name, code, saved["verifier"])
        identity = await self.directory.identify(name, endpoints, tokens, saved["nonce"])
        user = await self._account_for(name, identity, request)
        return user, await self.accounts.start_session(user.id, request)

    async def _redeem(
        self, config: OAuthProvider, token_url: str, name: str, code: str, verifier: str
    ) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri(name),
            "code_verifier": verifier,
            "client_id": config.client_id,
            "client_secret": config.client_secret.get_secret_value(),
        }
        try:
            response = await self.http.post(
                token_url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as error:
            raise Unavailable(f"cannot reach the {name} token endpoint: {error}") from error
        try:
            tokens: dict[str, Any] = response.json()
        except ValueError:
            tokens = {}
        if response.status_code != 200 or "access_token" not in tokens:
            reason = tokens.get("error_description") or tokens.get("error") or response.status_code
            raise Unauthorized(f"OAuth login failed: {reason}", code="oauth_failed")
        return tokens

    async def _account_for(self, name: str, identity: Identity, request: RequestInfo) -> User:
        async with self.database.transaction() as session:
            linked = await session.scalar(
                select(User)
                .join(OAuthConnection, OAuthConnection.user_id == User.id)
                .where(
                    OAuthConnection.provider == name,
                    OAuthConnection.provider_user_id == identity.subject,
                    User.deleted_at.is_(None),
                )
            )
            if linked is not None:
                return linked
            if not identity.email:
                raise Unauthorized(
                    "OAuth login failed: the provider gave no e-mail", code="oauth_failed"
                )
            user = await UserRepository(session).get_by_email(identity.email)
            if user is not None and not identity.email_verified:
                raise Conflict(
                    "an account with this e-mail exists; log in with its password to link "
                    f"{name}, or verify the e-mail at {name}",
                    code="email_in_use",
                )
            actor = Actor(user_id=None, api_key_id=None, request=request)
            if user is None:
                first = await session.scalar(select(User.id).limit(1)) is None
                user = User(
                    email=identity.email,
                    name=identity.name,
                    is_admin=first,
                    email_verified_at=utcnow() if identity.email_verified else None,
                )
                session.add(user)
                await session.flush()
                actor = Actor(user_id=user.id, api_key_id=None, request=request)
                await record(
                    session,
                    actor,
                    "user.created",
                    "user",
                    user.id,
                    new={"email": user.email, "name": user.name, "via": name},
                )
                label = identity.name or identity.email.partition("@")[0]
                await create_workspace(session, user, f"{label}'s workspace", actor, personal=True)
            connection = OAuthConnection(
                user_id=user.id,
                provider=name,
                provider_user_id=identity.subject,
                email=identity.email,
                scopes=[],
            )
            session.add(connection)
            await session.flush()
            await record(
                session,
                Actor(user.id, None, request),
                "oauth_connection.created",
                "oauth_connection",
                connection.id,
                new={"provider": name, "email": identity.email},
            )
            return user
