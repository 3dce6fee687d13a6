"""Access tokens (JWT), purpose-bound signed tokens, and opaque random tokens.

Invariants:
- Access tokens are short-lived JWTs: HS256 under the secret key by default,
  RS256 or EdDSA when a key pair is configured. `verify` accepts only the
  configured algorithm (no ``alg: none``, no HS/RS confusion), requires
  ``exp``, ``sub`` and ``sid`` and checks issuer and ``typ``.
- `SignedTokens` sign small, short-lived claims for one named purpose (an MFA
  challenge, an OAuth state cookie) with HS256; a token made for one purpose
  is refused for another.
- HS256 tokens are signed with the current secret and verified with it or a
  previous one (`LINKFLOW_SECRET_KEYS_PREVIOUS`), so a key rotation logs nobody
  out: a token signed before it verifies until it expires.
- Opaque tokens (refresh tokens, password-reset and invitation tokens) carry
  256 random bits, so a plain SHA-256 is a safe way to store them: there is
  nothing to brute-force. The database only ever holds the hash.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import jwt

__all__ = [
    "AccessClaims",
    "AccessTokens",
    "InvalidToken",
    "SignedTokens",
    "hash_opaque_token",
    "new_opaque_token",
]

ISSUER: Final = "linkflow"
# Tolerated clock difference between the process that signs and the one that verifies.
LEEWAY: Final = timedelta(seconds=10)
Algorithm = Literal["HS256", "RS256", "EdDSA"]


class InvalidToken(Exception):
    """A token that is malformed, expired, forged or meant for something else."""


def _decode(token: str, keys: Sequence[str | bytes], **options: Any) -> dict[str, Any]:
    """`jwt.decode` with the first of `keys` whose signature matches. Only a signature
    mismatch tries the next key: an expired or misdirected token fails at once."""
    for key in keys[:-1]:
        try:
            return jwt.decode(token, key, **options)
        except jwt.InvalidSignatureError:
            continue
    return jwt.decode(token, keys[-1], **options)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a valid access token says: who, which login session, until when."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: datetime


class AccessTokens:
    """Issues and verifies access JWTs with one algorithm and key (pair)."""

    def __init__(
        self,
        *,
        algorithm: Algorithm,
        signing_key: str | bytes,
        verifying_key: str | bytes,
        ttl: timedelta,
        previous_verifying_keys: Sequence[str | bytes] = (),
    ) -> None:
        self.algorithm: Final = algorithm
        self.ttl: Final = ttl
        self._signing_key = signing_key
        self._verifying_keys: Final = (verifying_key, *previous_verifying_keys)

    @classmethod
    def hs256(cls, secret: str, ttl: timedelta, previous: Sequence[str] = ()) -> AccessTokens:
        """Signed with `secret`; verified with it or any of the `previous` secrets."""
        return cls(algorithm="HS256", signing_key=secret, verifying_key=secret, ttl=ttl,
                   previous_verifying_keys=previous)  # fmt: skip

    def issue(
        self, user_id: uuid.UUID, session_id: uuid.UUID, *, now: datetime | None = None
    ) -> str:
        """A signed access token for `user_id` in login session `session_id`."""
        issued = now or datetime.now(UTC)
        claims = {
            "iss": ISSUER,
            "typ": "access",
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": int(issued.timestamp()),
            "exp": int((issued + self.ttl).timestamp()),
        }
        return jwt.encode(claims, self._signing_key, algorithm=self.algorithm)

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token; `InvalidToken` otherwise."""
        try:
            claims = _decode(
                token,
                self._verifying_keys,
                algorithms=[self.algorithm],
                issuer=ISSUER,
                leeway=LEEWAY,
                options={"require": ["exp", "sub", "sid", "iss"]},
            )
            if claims.get("typ") != "access":
                raise InvalidToken("not an access token")
            return AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        except (jwt.InvalidTokenError, ValueError, TypeError, AttributeError) as error:
            raise InvalidToken(str(error) or "invalid token") from None


class SignedTokens:
    """HS256 tokens for one purpose at a time, under the process's secret key (and read
    under a previous one too)."""

    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        self._secret = secret
        self._secrets: Final = (secret, *previous)

    def issue(self, purpose: str, claims: dict[str, str], ttl: timedelta) -> str:
        now = datetime.now(UTC)
        body: dict[str, object] = {
            **claims,
            "iss": ISSUER,
            "aud": f"linkflow:{purpose}",
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
        }
        return jwt.encode(body, self._secret, algorithm="HS256")

    def read(self, purpose: str, token: str) -> dict[str, str]:
        """The claims of a valid token made for `purpose`; `InvalidToken` otherwise."""
        try:
            claims = _decode(
                token,
                self._secrets,
                algorithms=["HS256"],
                audience=f"linkflow:{purpose}",
                issuer=ISSUER,
                leeway=LEEWAY,
                options={"require": ["exp", "aud"]},
            )
        except jwt.InvalidTokenError as error:
            raise InvalidToken(str(error) or "invalid token") from None
        return {key: value for key, value in claims.items() if isinstance(value, str)}


def new_opaque_token() -> str:
    """256 random bits, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_opaque_token(token: str) -> str:
    """The SHA-256 (hex) under which an opaque token is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()
