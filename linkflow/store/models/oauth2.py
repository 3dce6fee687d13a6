"""OAuth2 credentials: connections in progress, and who is refreshing a token.

Invariants:
- An `OAuth2ConnectState` is one started connection (the consent screen is
  open): single-use, expiring, bound to the user and workspace that started
  it. Only the SHA-256 of its `state` is stored; the PKCE verifier is kept
  until the callback redeems the code, then the row is deleted.
- A `CredentialRefreshLease` is held by the one process refreshing a
  credential's token; others wait for its result instead of spending the
  same refresh token (a provider that rotates refresh tokens revokes the
  whole grant when one is used twice). It expires, so a crashed holder does
  not block refreshes for long.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from linkflow.store.models._base import AUDIT_ORDER, Base
from linkflow.store.types import new_id, utcnow

__all__ = ["CredentialRefreshLease", "OAuth2ConnectState"]


class OAuth2ConnectState(Base):
    """A connection of an OAuth2 credential that waits for the provider's callback."""

    __tablename__ = "oauth2_connect_states"
    __table_args__ = (Index("ix_oauth2_connect_states_expires_at", "expires_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    credential_type: Mapped[str] = mapped_column(String(64))
    # A new credential's name, or the credential to reconnect (exactly one is set).
    credential_name: Mapped[str | None] = mapped_column(String(255), default=None)
    credential_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("credentials.id", ondelete="CASCADE"), default=None
    )
    code_verifier: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=AUDIT_ORDER)


class CredentialRefreshLease(Base):
    """The process refreshing a credential's OAuth2 token, until `expires_at`."""

    __tablename__ = "credential_refresh_leases"

    credential_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("credentials.id", ondelete="CASCADE"), primary_key=True
    )
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
