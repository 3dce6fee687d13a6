"""Request and response bodies shared by several routers, and the list envelope.

Responses are built from the store's rows (`from_attributes`), so a column
that is not named here (a password hash, a key hash, an MFA secret) can
never reach a client. Ids are UUIDs and times ISO 8601 UTC, as the contract
says.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "EmailAddress",
    "ListOf",
    "MemberOut",
    "Name",
    "Password",
    "TokensOut",
    "UserOut",
    "WorkspaceOut",
]

T = TypeVar("T")

EmailAddress = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    ),
    Field(examples=["ada@example.com"]),
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ListOf(BaseModel, Generic[T]):
    """A page of a list: pass `next_cursor` back as `?cursor=` for the next one."""

    data: list[T]
    next_cursor: str | None


class UserOut(Out):
    id: uuid.UUID
    email: str
    name: str
    is_admin: bool
    mfa_enabled: bool
    email_verified_at: datetime | None
    last_login_at: datetime | None
    created_at: datetime


class PublicUserOut(Out):
    """Another user, as a fellow member sees them."""

    id: uuid.UUID
    email: str
    name: str
    created_at: datetime


class WorkspaceOut(Out):
    id: uuid.UUID
    name: str
    slug: str
    owner_id: uuid.UUID
    is_personal: bool
    settings: dict[str, Any]
    role: str | None = Field(default=None, description="Your role in this workspace.")
    created_at: datetime
    updated_at: datetime


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")


class MemberOut(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID
    user_id: uuid.UUID | None
    email: str | None
    name: str | None
    role: str
    status: str
    invited_at: datetime | None
    joined_at: datetime | None
    created_at: datetime
