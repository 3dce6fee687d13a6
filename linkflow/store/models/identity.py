"""Who is calling: users, their login sessions, OAuth identities and API keys.

Invariants:
- `users.email` is stored lower-cased (a CHECK enforces it) and is unique
  among users that are not deleted, so a deleted account frees its address.
- Secrets are never stored in clear: passwords, refresh tokens, API keys and
  MFA recovery codes are hashes; the TOTP secret and OAuth tokens are
  ciphertexts from the secret box, whose format embeds the key id.
- A password-reset token is single-use (`used_at`) and expires; only its
  hash is stored.
- A refresh-token rotation links the old session row to its successor
  (`replaced_by_id`); all rows of one login share a `family_id`, which is what
  a reuse of an old token revokes.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, validates

from linkflow.store.models._base import (
    AUDIT_ORDER,
    Base,
    SoftDeletable,
    Timestamped,
    WorkspaceScoped,
)
from linkflow.store.types import JSONDocument, JSONValue, StringArray, new_id, utcnow

__all__ = ["ApiKey", "OAuthConnection", "PasswordResetToken", "User", "UserSession"]


class User(Timestamped, SoftDeletable, Base):
    """A person who can log in. Global: a user joins workspaces through memberships."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("email = lower(email)", name="email_lower_case"),
        CheckConstraint("failed_logins >= 0", name="failed_logins_non_negative"),
        Index(
            "uq_users_email_live",
            "email",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320))
    # NULL for accounts that only ever log in through OAuth.
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    name: Mapped[str] = mapped_column(String(255), default="")
    is_admin: Mapped[bool] = mapped_column(default=False)
    email_verified_at: Mapped[datetime | None] = mapped_column(default=None)
    mfa_enabled: Mapped[bool] = mapped_column(default=False)
    mfa_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # Hashes of the unused recovery codes; a used code is removed from the list.
    mfa_recovery_codes: Mapped[JSONValue] = mapped_column(JSONDocument, default=list)
    # The last TOTP time step accepted: a code from that step or earlier is a replay.
    mfa_last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    # Set by an instance admin: no login, session or API key of the user works meanwhile.
    suspended_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=AUDIT_ORDER)

    @validates("email")
    def _lower_case_email(self, _key: str, email: str) -> str:
        return email.strip().lower()


class UserSession(Base):
    """One refresh token of one login; rotation creates the next row of the family."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_user_id", "user_id"),
        Index("ix_sessions_family_id", "family_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    family_id: Mapped[uuid.UUID]
    refresh_token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="SET NULL"), default=None
    )
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    ip_address: Mapped[str | None] = mapped_column(String(45), default=None)
    user_agent: Mapped[str | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=AUDIT_ORDER)


class OAuthConnection(Timestamped, Base):
    """A user's identity at an OAuth provider (login with GitHub, Google...)."""

    __tablename__ = "oauth_connections"
    __table_args__ = (
        UniqueConstraint("provider", "provider_user_id"),
        UniqueConstraint("user_id", "provider"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    provider_user_id: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    access_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    refresh_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    token_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    scopes: Mapped[list[str]] = mapped_column(StringArray, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=AUDIT_ORDER)


class ApiKey(WorkspaceScoped):
    """An ``lf_...`` key: belongs to one workspace, carries scopes, stored hashed.

    `prefix` is the visible start of the key, unique, used to find the row
    before the hash is checked in constant time.
    """

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_workspace_created", "workspace_id", "created_at", "id"),)

    name: Mapped[str] = mapped_column(String(255))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[list[str]] = mapped_column(StringArray, default=list)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class PasswordResetToken(Base):
    """A single-use, expiring token sent by e-mail to set a new password."""

    __tablename__ = "password_reset_tokens"
    __table_args__ = (Index("ix_password_reset_tokens_user_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    ip_address: Mapped[str | None] = mapped_column(String(45), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=AUDIT_ORDER)
