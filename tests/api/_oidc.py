"""A small OpenID Connect provider on loopback, speaking the real protocol.

It serves discovery, an authorize endpoint that logs in whichever user the
test chose (`next_user`) and redirects back with a code, a token endpoint
that checks the client secret, the redirect URI and the PKCE verifier and
returns an RS256-signed ID token carrying the nonce, a JWKS endpoint,
userinfo, and GitHub's `/user` and `/user/emails` for the GitHub flavour.
It runs in a thread of the test process (a standard-library HTTP server).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "linkflow-test-client"
CLIENT_SECRET = "linkflow-test-secret"
KEY_ID = "test-key-1"


@functools.cache
def _signing_key() -> rsa.RSAPrivateKey:
    """One RSA key for the session: generating one per test costs a fifth of a second."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    user: dict[str, Any]


@dataclass
class Provider:
    """State of the running provider; tests set `next_user` before a login."""

    url: str = ""
    next_user: dict[str, Any] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: int = 0
    key: rsa.RSAPrivateKey = field(default_factory=lambda: _signing_key())

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": KEY_ID, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def id_token(self, user: dict[str, Any], nonce: str | None) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": CLIENT_ID,
            "sub": user["sub"],
            "iat": now,
            "exp": now + 300,
            "email": user.get("email"),
            "email_verified": user.get("email_verified", False),
            "name": user.get("name"),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KEY_ID})


class _Handler(BaseHTTPRequestHandler):
    """Serves one `Provider` (set as the class attribute `provider`)."""

    provider: Provider

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _bearer_user(self) -> dict[str, Any] | None:
        header = self.headers.get("Authorization", "")
        return self.provider.tokens.get(header.removeprefix("Bearer "))

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if url.path == "/authorize":
            self._authorize(query)
            return
        if url.path in ("/.well-known/openid-configuration", "/jwks"):
            self._json(200, self._discovery() if "well-known" in url.path else self.provider.jwks())
            return
        user = self._bearer_user()
        if url.path not in ("/userinfo", "/user", "/user/emails"):
            self._json(404, {"error": "not_found"})
        elif user is None:
            self._json(401, {"error": "invalid_token"})
        elif url.path == "/user":  # GitHub's profile
            profile = {"id": int(user["sub"]), "login": user["name"], "name": user["name"]}
            self._json(200, {**profile, "email": None})
        elif url.path == "/user/emails":  # GitHub's addresses
            verified = user.get("email_verified", False)
            self._json(200, [{"email": user["email"], "primary": True, "verified": verified}])
        else:
            self._json(200, user)

    def _discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.provider.url,
            "authorization_endpoint": f"{self.provider.url}/authorize",
            "token_endpoint": f"{self.provider.url}/token",
            "userinfo_endpoint": f"{self.provider.url}/userinfo",
            "jwks_uri": f"{self.provider.url}/jwks",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def _authorize(self, query: dict[str, str]) -> None:
        if query.get("client_id") != CLIENT_ID or query.get("code_challenge_method") != "S256":
            self._json(400, {"error": "invalid_request"})
            return
        code = secrets.token_urlsafe(16)
        self.provider.grants[code] = Grant(
            query["client_id"],
            query["redirect_uri"],
            query["code_challenge"],
            query.get("nonce"),
            dict(self.provider.next_user),
        )
        target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if urlparse(self.path).path != "/token":
            self._json(404, {"error": "not_found"})
            return
        self.provider.token_requests += 1
        grant = self.provider.grants.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .decode()
            .rstrip("=")
        )
        if (
            grant is None
            or form.get("client_id") != CLIENT_ID
            or form.get("client_secret") != CLIENT_SECRET
            or form.get("redirect_uri") != grant.redirect_uri
            or challenge != grant.challenge
        ):
            self._json(400, {"error": "invalid_grant"})
            return
        access = secrets.token_urlsafe(16)
        self.provider.tokens[access] = grant.user
        self._json(
            200,
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.provider.id_token(grant.user, grant.nonce),
            },
        )


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"provider": provider})


class LocalProvider:
    """Start and stop the provider on a free loopback port."""

    def __init__(self) -> None:
        self.provider = Provider()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.provider))
        self.provider.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def __enter__(self) -> Provider:
        self.thread.start()
        return self.provider

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
