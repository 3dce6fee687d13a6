"""Google credentials, shared by the Google integrations: an OAuth2 connection of a
user's account (`google_oauth2`) and a service account's JSON key
(`google_service_account`), and the bearer token each gives a request.

Decisions:
- `google_oauth2` is connected through Google's consent screen
  (`/credentials/oauth2/google_oauth2/authorize`), with `access_type=offline`
  and `prompt=consent` so that Google hands out a refresh token every time;
  the control plane keeps its access token fresh, so a node only reads it.
- `google_service_account` signs a JWT with the key's private key (RS256) and
  trades it for an access token at the key's `token_uri` (the JWT-bearer grant
  of RFC 7523, as Google documents for server-to-server calls), once per
  activation: tokens last an hour, an activation far less. `subject` makes it
  act for a user of the domain (domain-wide delegation).
- Errors never quote the key, the assertion or a token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
import jwt

from linkflow.nodes.sdk import CredentialField, CredentialType, NodeError, OAuth2Flow

__all__ = [
    "GOOGLE_CREDENTIAL_TYPES",
    "GOOGLE_OAUTH2",
    "GOOGLE_SERVICE_ACCOUNT",
    "access_token",
    "google_oauth2",
]

AUTHORIZE_URL: Final = "https://accounts.google.com/o/oauth2/v2/auth"
TOKEN_URL: Final = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
JWT_BEARER: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME: Final = timedelta(hours=1)
"""The longest Google accepts for a service account's assertion."""

TOKEN_FIELDS: Final = (
    CredentialField("access_token", secret=True),
    CredentialField("refresh_token", secret=True),
    CredentialField("expires_at", "datetime", description="When access_token expires."),
    CredentialField("scope", description="The scopes Google granted, space-separated."),
)


def google_oauth2(name: str, display_name: str, scopes: tuple[str, ...]) -> CredentialType:
    """A Google account connected through the consent screen, for `scopes`."""
    return CredentialType(
        name,
        display_name,
        "A Google account, connected through Google's consent screen "
        f"(`GET /api/v1/credentials/oauth2/{name}/authorize`); the tokens refresh themselves.",
        TOKEN_FIELDS,
        oauth2=OAuth2Flow(
            authorize_url=AUTHORIZE_URL,
            token_url=TOKEN_URL,
            scopes=scopes,
            authorize_params=(("access_type", "offline"), ("prompt", "consent")),
        ),
    )


GOOGLE_OAUTH2: Final = google_oauth2(
    "google_oauth2",
    "Google (OAuth2)",
    (
        "https://www.googleapis.com/auth/spreadsheets",
        "https://www.googleapis.com/auth/drive.file",
    ),
)
GOOGLE_SERVICE_ACCOUNT: Final = CredentialType(
    "google_service_account",
    "Google service account",
    "A service account's JSON key; share each spreadsheet with its e-mail address.",
    (
        CredentialField(
            "service_account_json",
            required=True,
            secret=True,
            description="The key file's content, as downloaded from the Cloud console.",
        ),
        CredentialField(
            "subject",
            description="Optional: the user to act for (domain-wide delegation).",
        ),
    ),
)
GOOGLE_CREDENTIAL_TYPES: Final = ("google_oauth2", "google_service_account")


def _key(data: Mapping[str, Any], operation: str) -> dict[str, Any]:
    try:
        key = json.loads(str(data.get("service_account_json") or ""))
    except ValueError:
        key = None
    fields = ("client_email", "private_key", "token_uri")
    if not isinstance(key, dict) or not all(isinstance(key.get(name), str) for name in fields):
        raise NodeError(
            f"{operation}: the service account key is not a JSON key file with client_email, "
            "private_key and token_uri"
        )
    return key


async def _service_account_token(
    http: httpx.AsyncClient, data: Mapping[str, Any], scopes: tuple[str, ...], *,
    now: datetime, timeout_s: float, operation: str,
) -> str:  # fmt: skip
    key = _key(data, operation)
    claims: dict[str, Any] = {
        "iss": key["client_email"], "scope": " ".join(scopes), "aud": key["token_uri"],
        "iat": int(now.timestamp()), "exp": int((now + ASSERTION_LIFETIME).timestamp()),
    }  # fmt: skip
    if data.get("subject"):
        claims["sub"] = str(data["subject"])
    try:
        assertion = jwt.encode(claims, key["private_key"], algorithm="RS256",
                               headers={"kid": str(key.get("private_key_id") or "")})  # fmt: skip
    except (ValueError, TypeError, jwt.PyJWTError):
        raise NodeError(f"{operation}: the service account's private_key is not usable") from None
    try:
        response = await http.post(
            key["token_uri"], data={"grant_type": JWT_BEARER, "assertion": assertion},
            headers={"Accept": "application/json"}, timeout=timeout_s,
        )  # fmt: skip
    except httpx.HTTPError as error:
        raise NodeError(f"{operation}: Google's token endpoint cannot be reached "
                        f"({type(error).__name__})", retryable=True) from None  # fmt: skip
    return _token_of(response, operation)


def _token_of(response: httpx.Response, operation: str) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        said = f": {str(error)[:64]}" if isinstance(error, str) else ""
        raise NodeError(
            f"{operation}: Google refused the service account (HTTP {response.status_code}{said})",
            retryable=response.status_code == 429 or response.status_code >= 500,
        )
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise NodeError(f"{operation}: Google's token answer has no access_token")
    return token


async def access_token(
    http: httpx.AsyncClient,
    credential: Mapping[str, Any],
    scopes: tuple[str, ...],
    *,
    now: Callable[[], datetime],
    timeout_s: float,
    operation: str,
) -> str:
    """The bearer token of a Google credential (either type)."""
    kind = credential.get("type")
    if kind == "google_service_account":
        return await _service_account_token(http, credential, scopes, now=now(),
                                            timeout_s=timeout_s, operation=operation)  # fmt: skip
    token = credential.get("access_token")
    if not isinstance(token, str) or not token:
        raise NodeError(
            f"{operation}: the Google credential is not connected (it has no access token): "
            "connect it through /api/v1/credentials/oauth2/google_oauth2/authorize"
        )
    return token
