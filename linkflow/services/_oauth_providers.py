"""OAuth login providers: where their endpoints are, and who a token says the user is.

`github` speaks plain OAuth 2.0 (the user comes from its REST API); `google`
and every other configured provider speak OpenID Connect, found through the
issuer's discovery document, with ID tokens verified against its JWKS:
signature (asymmetric algorithms only), issuer, audience, expiry and nonce.
Discovery documents and key sets are cached per process for an hour; an ID
token signed with an unknown key id refreshes the key set once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final, Literal

import httpx
import jwt

from linkflow.config import OAuthProvider
from linkflow.services.errors import Unauthorized, Unavailable

__all__ = ["Endpoints", "Identity", "ProviderDirectory"]

_GITHUB: Final = {
    "authorize_url": "https://github.com/login/oauth/authorize",
    "token_url": "https://github.com/login/oauth/access_token",
    "userinfo_url": "https://api.github.com/user",
    "emails_url": "https://api.github.com/user/emails",
}
_GOOGLE_ISSUER: Final = "https://accounts.google.com"
_CACHE_S: Final = 3600.0
_ID_TOKEN_ALGORITHMS: Final = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


@dataclass(frozen=True, slots=True)
class Endpoints:
    kind: Literal["github", "oidc"]
    authorize_url: str
    token_url: str
    userinfo_url: str | None
    emails_url: str | None
    issuer: str | None
    jwks_uri: str | None
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says the user is."""

    subject: str
    email: str | None
    email_verified: bool
    name: str


def _failed(detail: str) -> Unauthorized:
    return Unauthorized(f"OAuth login failed: {detail}", code="oauth_failed")


class ProviderDirectory:
    """Endpoints and identity checks of the configured providers."""

    def __init__(self, providers: dict[str, OAuthProvider], http: httpx.AsyncClient) -> None:
        self.providers = providers
        self.http = http
        self._cache: dict[str, tuple[float, Any]] = {}

    async def _get_json(self, url: str, *, fresh: bool = False, **kwargs: Any) -> Any:
        cached = self._cache.get(url)
        if cached is not None and not fresh and cached[0] > time.monotonic():
            return cached[1]
        try:
            response = await self.http.get(url, **kwargs)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise Unavailable(f"cannot read {url}: {error}") from error
        self._cache[url] = (time.monotonic() + _CACHE_S, document)
        return document

    async def endpoints(self, name: str) -> Endpoints:
        config = self.providers[name]
        if name == "github" and config.issuer is None:
            return Endpoints(
                kind="github",
                authorize_url=config.authorize_url or _GITHUB["authorize_url"],
                token_url=config.token_url or _GITHUB["token_url"],
                userinfo_url=config.userinfo_url or _GITHUB["userinfo_url"],
                emails_url=config.emails_url or _GITHUB["emails_url"],
                issuer=None,
                jwks_uri=None,
                scopes=tuple(config.scopes or ("read:user", "user:email")),
            )
        issuer = config.issuer or (_GOOGLE_ISSUER if name == "google" else None)
        if issuer is None:
            raise Unavailable(f"OAuth provider {name!r} has no issuer configured")
        discovery = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        return Endpoints(
            kind="oidc",
            authorize_url=config.authorize_url or discovery["authorization_endpoint"],
            token_url=config.token_url or discovery["token_endpoint"],
            userinfo_url=config.userinfo_url or discovery.get("userinfo_endpoint"),
            emails_url=None,
            issuer=discovery.get("issuer", issuer),
            jwks_uri=discovery.get("jwks_uri"),
            scopes=tuple(config.scopes or ("openid", "email", "profile")),
        )

    async def identify(
        self, name: str, endpoints: Endpoints, tokens: dict[str, Any], nonce: str
    ) -> Identity:
        if endpoints.kind == "github":
            return await self._github_identity(endpoints, tokens["access_token"])
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise _failed("the provider returned no ID token")
        claims = await self._verify_id_token(name, endpoints, id_token, nonce)
        return Identity(
            subject=str(claims["sub"]),
            email=claims.get("email"),
            email_verified=claims.get("email_verified") is True,
            name=str(claims.get("name") or ""),
        )

    async def _verify_id_token(
        self, name: str, endpoints: Endpoints, id_token: str, nonce: str
    ) -> dict[str, Any]:
        if endpoints.jwks_uri is None:
            raise _failed("the provider publishes no JWKS")
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.InvalidTokenError as error:
            raise _failed(f"malformed ID token: {error}") from None
        if header.get("alg") not in _ID_TOKEN_ALGORITHMS:
            raise _failed("the ID token is not signed with an accepted algorithm")
        key = await self._signing_key(endpoints.jwks_uri, header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=[header["alg"]],
                audience=self.providers[name].client_id,
                issuer=endpoints.issuer,
                leeway=30,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.InvalidTokenError as error:
            raise _failed(f"the ID token is invalid: {error}") from None
        if claims.get("nonce") != nonce:
            raise _failed("the ID token's nonce does not match")
        return claims

    async def _signing_key(self, jwks_uri: str, kid: str | None) -> Any:
        for fresh in (False, True):
            try:
                keys = jwt.PyJWKSet.from_dict(await self._get_json(jwks_uri, fresh=fresh))
            except jwt.PyJWKError as error:
                raise _failed(f"unusable JWKS: {error}") from None
            for key in keys.keys:
                if kid is None or key.key_id == kid:
                    return key.key
        raise _failed("the ID token is signed with an unknown key")

    async def _github_identity(self, endpoints: Endpoints, access_token: str) -> Identity:
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        assert endpoints.userinfo_url is not None
        try:
            user = (await self.http.get(endpoints.userinfo_url, headers=headers)).raise_for_status()
            profile = user.json()
            email, verified = None, False
            if endpoints.emails_url:
                listed = await self.http.get(endpoints.emails_url, headers=headers)
                for entry in listed.raise_for_status().json():
                    if entry.get("primary"):
                        email, verified = entry.get("email"), entry.get("verified") is True
        except (httpx.HTTPError, ValueError) as error:
            raise _failed(f"cannot read the GitHub profile: {error}") from None
        return Identity(
            subject=str(profile["id"]),
            email=email or profile.get("email"),
            email_verified=verified,
            name=str(profile.get("name") or profile.get("login") or ""),
        )
