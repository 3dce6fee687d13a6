"""An OAuth 2.0 authorization server on loopback, for the credential connect flow.

What it speaks, as RFC 6749, RFC 7636 and the OAuth 2.0 Security BCP say:
- `GET /authorize`: `response_type=code`, a known `client_id` and its registered
  `redirect_uri`, a `state`, and PKCE (`code_challenge` with
  `code_challenge_method=S256`; plain is refused). The user consents at once (no
  login page) and the browser is sent back (302) with `code` and `state`; after
  `deny_next()`, with `error=access_denied` instead. A bad client or redirect URI
  is a 400 page, never a redirect (§4.1.2.1).
- `POST /token`, form-encoded, the client authenticated by `client_secret_post` or
  HTTP Basic (§2.3.1), answering JSON with `Cache-Control: no-store` (§5.1) and
  errors as `{"error", "error_description"}` (§5.2):
  - `authorization_code`: the code once only, within `CODE_TTL_S`, with the same
    `redirect_uri`, and `code_verifier` whose S256 matches the challenge;
  - `refresh_token`: rotation: every refresh gives a new refresh token and the
    spent one dies; using a dead one again is reuse, which revokes the whole
    grant (every token it gave), as the Security BCP §4.14.2 asks.
  - `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523, Google's service
    accounts): an `assertion` signed RS256 by a registered service account's key,
    whose `aud` is this token endpoint and which lives an hour at most; it gives an
    access token and no refresh token.
- Access tokens last `expires_in` seconds (short); `valid(token)` is what a
  resource server (tests/_saas/google_sheets.py) asks.

Never bind anything but a loopback address here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import jwt

from tests._saas._base import FakeApi, Recorded, Reply, run_fake

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "FakeOAuthProvider", "Grant", "fake_oauth_provider"]

CLIENT_ID: Final = "linkflow-loopback-client"
CLIENT_SECRET: Final = "loopback-client-secret-5f2c"
CODE_TTL_S: Final = 60.0
JWT_BEARER: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass
class Grant:
    """One user's consent: the codes and tokens it gave, dead once revoked."""

    number: int
    scope: str
    revoked: bool = False
    access_tokens: list[str] = field(default_factory=list)
    refresh_tokens: list[str] = field(default_factory=list)
    """In issue order; only the last one is alive (rotation)."""

    @property
    def live_refresh_token(self) -> str | None:
        return None if self.revoked or not self.refresh_tokens else self.refresh_tokens[-1]


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    issued: float


def _error(status: int, error: str, description: str) -> Reply:
    return Reply.json({"error": error, "error_description": description}, status, **NO_STORE)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class FakeOAuthProvider(FakeApi):
    def __init__(self, *, expires_in: int = 30) -> None:
        super().__init__()
        self.expires_in = expires_in
        self.redirect_uris: set[str] = set()
        self.grants: list[Grant] = []
        self.token_requests: list[dict[str, str]] = []
        """Every form POSTed to /token, in order (secrets included: tests only)."""
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, tuple[Grant, float]] = {}
        self._refresh: dict[str, Grant] = {}
        self._deny = 0
        self._numbers = itertools.count(1)
        self.service_accounts: dict[str, str] = {}
        """client_email → public key (PEM) of the service accounts this server knows."""
        self.assertions: list[dict[str, Any]] = []
        """The verified claims of every service-account assertion, in order."""

    # -- what tests use ----------------------------------------------------------------

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def deny_next(self) -> None:
        """The next consent is refused (the user clicks Cancel)."""
        self._deny += 1

    def valid(self, token: str) -> bool:
        """Whether `token` is a live access token (for a resource server)."""
        found = self._access.get(token)
        return found is not None and not found[0].revoked and found[1] > time.time()

    def grant_of(self, token: str) -> Grant | None:
        found = self._access.get(token)
        return found[0] if found else self._refresh.get(token)

    def grants_of_type(self, grant_type: str) -> list[dict[str, str]]:
        return [form for form in self.token_requests if form.get("grant_type") == grant_type]

    # -- the endpoints -----------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply:
        if request.method == "GET" and request.path == "/authorize":
            return self._authorize({k: v[-1] for k, v in request.query.items()})
        if request.method == "POST" and request.path == "/token":
            return self._token(request)
        return Reply(404, "no such endpoint")

    def _authorize(self, query: dict[str, str]) -> Reply:
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != CLIENT_ID:
            return Reply(400, "unknown client_id", content_type="text/plain")
        if redirect not in self.redirect_uris:
            return Reply(400, "redirect_uri is not registered", content_type="text/plain")
        state = query.get("state", "")

        def back(**params: str) -> Reply:
            joined = "&" if "?" in redirect else "?"
            where = redirect + joined + urlencode({**params, "state": state})
            return Reply(302, "", {"Location": where})

        if query.get("response_type") != "code":
            return back(error="unsupported_response_type")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 is required")
        if self._deny:
            self._deny -= 1
            return back(error="access_denied", error_description="The user refused")
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(CLIENT_ID, redirect, query["code_challenge"],
                                  query.get("scope", ""), time.time())  # fmt: skip
        return back(code=code)

    def _client(self, request: Recorded, form: dict[str, str]) -> bool:
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
            return user == CLIENT_ID and hmac.compare_digest(password, CLIENT_SECRET)
        return form.get("client_id") == CLIENT_ID and hmac.compare_digest(
            form.get("client_secret", ""), CLIENT_SECRET
        )

    def _token(self, request: Recorded) -> Reply:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return _error(400, "invalid_request", "the body must be form-encoded")
        form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        self.token_requests.append(form)
        if form.get("grant_type") == JWT_BEARER:  # the assertion is the client's proof
            return self._assertion(form.get("assertion", ""))
        if not self._client(request, form):
            return _error(401, "invalid_client", "client authentication failed")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._redeem(form)
        if grant_type == "refresh_token":
            return self._rotate(form)
        return _error(400, "unsupported_grant_type", f"{grant_type!r} is not supported")

    def _redeem(self, form: dict[str, str]) -> Reply:
        code = self._codes.pop(form.get("code", ""), None)  # single use, even when refused
        if code is None or time.time() - code.issued > CODE_TTL_S:
            return _error(400, "invalid_grant", "the code is unknown, used or expired")
        if form.get("redirect_uri") != code.redirect_uri:
            return _error(400, "invalid_grant", "redirect_uri differs from the authorization's")
        if _s256(form.get("code_verifier", "")) != code.challenge:
            return _error(400, "invalid_grant", "the PKCE code_verifier does not match")
        grant = Grant(number=next(self._numbers), scope=code.scope)
        self.grants.append(grant)
        return self._issue(grant)

    def _rotate(self, form: dict[str, str]) -> Reply:
        spent = form.get("refresh_token", "")
        grant = self._refresh.get(spent)
        if grant is None or grant.revoked:
            return _error(400, "invalid_grant", "the refresh token is unknown or revoked")
        if spent != grant.live_refresh_token:  # reuse of a rotated token: revoke the grant
            grant.revoked = True
            return _error(400, "invalid_grant", "the refresh token was already used")
        return self._issue(grant)

    def _assertion(self, assertion: str) -> Reply:
        try:
            issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
            key = self.service_accounts[str(issuer)]
            claims: dict[str, Any] = jwt.decode(
                assertion, key, algorithms=["RS256"], audience=self.token_url,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )  # fmt: skip
        except (jwt.PyJWTError, KeyError):
            return _error(400, "invalid_grant", "Invalid JWT Signature.")
        if claims["exp"] - claims["iat"] > 3600:
            return _error(400, "invalid_grant", "Invalid JWT: lifetime is over an hour")
        self.assertions.append(claims)
        grant = Grant(number=next(self._numbers), scope=str(claims["scope"]))
        self.grants.append(grant)
        access = secrets.token_urlsafe(24)
        grant.access_tokens.append(access)
        self._access[access] = (grant, time.time() + self.expires_in)
        return Reply.json({"access_token": access, "token_type": "Bearer",
                           "expires_in": self.expires_in}, 200, **NO_STORE)  # fmt: skip

    def _issue(self, grant: Grant) -> Reply:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        grant.access_tokens.append(access)
        grant.refresh_tokens.append(refresh)
        self._access[access] = (grant, time.time() + self.expires_in)
        self._refresh[refresh] = grant
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                "expires_in": self.expires_in, "refresh_token": refresh,
                                "scope": grant.scope}  # fmt: skip
        return Reply.json(body, 200, **NO_STORE)


@contextmanager
def fake_oauth_provider(*, expires_in: int = 30) -> Iterator[FakeOAuthProvider]:
    """Serve a provider on 127.0.0.1 for the `with` block."""
    with run_fake(FakeOAuthProvider(expires_in=expires_in)) as fake:
        yield fake
