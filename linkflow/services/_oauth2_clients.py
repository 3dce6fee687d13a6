"""The instance's OAuth clients for credentials connected through a provider.

A credential type that declares an `OAuth2Flow` names its provider's endpoints;
the operator's `LINKFLOW_OAUTH2_CLIENTS` gives the client id and secret for that
type, and may override the endpoints and scopes (a sandbox, a loopback server in
tests). `OAuth2Clients` joins the two.

Invariants:
- A type is connectable when it declares `oauth2`; it can be connected and
  refreshed only when a client is configured for it as well.
- The client secret leaves this module only in the token requests' bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from linkflow.config import OAuth2Client
from linkflow.services.credential_types import CredentialTypes

__all__ = ["OAuth2Clients", "ResolvedClient"]


@dataclass(frozen=True, slots=True)
class ResolvedClient:
    """One credential type's provider endpoints and the instance's client there."""

    kind: str
    authorize_url: str
    token_url: str
    client_id: str
    client_secret: str | None
    scopes: tuple[str, ...]
    authorize_params: tuple[tuple[str, str], ...]

    def client_form(self) -> dict[str, str]:
        """The client's credentials as token-request fields (RFC 6749 §2.3.1)."""
        form = {"client_id": self.client_id}
        if self.client_secret:
            form["client_secret"] = self.client_secret
        return form


class OAuth2Clients:
    """Which credential types are connected through a provider, and with which client."""

    def __init__(
        self, types: CredentialTypes, configured: Mapping[str, OAuth2Client] | None = None
    ) -> None:
        self.types = types
        self.configured = dict(configured or {})

    def connectable(self, kind: str) -> bool:
        """Whether `kind` declares an OAuth2 flow (configured or not)."""
        declared = self.types.get(kind)
        return declared is not None and declared.oauth2 is not None

    def client(self, kind: str) -> ResolvedClient | None:
        """The endpoints and client of `kind`; None when it declares no flow or no client
        is configured for it."""
        declared = self.types.get(kind)
        config = self.configured.get(kind)
        if declared is None or declared.oauth2 is None or config is None:
            return None
        flow = declared.oauth2
        secret = config.client_secret.get_secret_value() if config.client_secret else None
        return ResolvedClient(
            kind=kind,
            authorize_url=config.authorize_url or flow.authorize_url,
            token_url=config.token_url or flow.token_url,
            client_id=config.client_id,
            client_secret=secret,
            scopes=tuple(config.scopes) if config.scopes is not None else flow.scopes,
            authorize_params=flow.authorize_params,
        )
