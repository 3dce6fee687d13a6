"""The credential types of HTTP authentication, which the http_request node applies.

Their test (`POST /credentials/{id}/test`) is the control plane's: with a
`test_url` it sends one GET with the credential applied, and oauth2's refreshes
its token, which needs the credential store; so none is declared here.
"""

from __future__ import annotations

from typing import Final

from linkflow.nodes.sdk import CredentialField, CredentialType

__all__ = ["HTTP_CREDENTIALS"]

_TEST_URL: Final = CredentialField(
    "test_url",
    "url",
    description="Optional: the test calls this URL with the credential and expects a 2xx.",
)

HTTP_CREDENTIALS: Final = (
    CredentialType("api_key", "API key", "A key sent in a header or a query parameter.", (
        CredentialField("value", required=True, secret=True),
        CredentialField("name", default="X-API-Key", description="The header or parameter name."),
        CredentialField("in", default="header", choices=("header", "query")),
        _TEST_URL,
    )),
    CredentialType("bearer", "Bearer token", "`Authorization: Bearer <token>`.", (
        CredentialField("token", required=True, secret=True),
        _TEST_URL,
    )),
    CredentialType("basic", "Basic auth", "`Authorization: Basic` with user and password.", (
        CredentialField("username", required=True),
        CredentialField("password", required=True, secret=True),
        _TEST_URL,
    )),
    CredentialType("header", "Header", "One header sent with every request.", (
        CredentialField("name", required=True),
        CredentialField("value", required=True, secret=True),
        _TEST_URL,
    )),
    CredentialType("query", "Query parameter", "One query parameter on every request.", (
        CredentialField("name", required=True),
        CredentialField("value", required=True, secret=True),
        _TEST_URL,
    )),
    CredentialType("oauth2", "OAuth2", "Tokens refreshed with the refresh_token grant.", (
        CredentialField("client_id", required=True),
        CredentialField("client_secret", secret=True),
        CredentialField("token_url", "url", required=True),
        CredentialField("access_token", secret=True),
        CredentialField("refresh_token", secret=True),
        CredentialField("expires_at", "datetime", description="When access_token expires."),
        CredentialField("scope"),
    )),
)  # fmt: skip
