"""Helpers of the API tests: settings for a test app, accounts made through the API.

Everything goes through the real app and a real database; the only thing
tuned for tests is Argon2's cost (a setting), so that registering a user
takes milliseconds rather than a tenth of a second.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from linkflow.api.container import Container
from linkflow.config import Settings

T = TypeVar("T")

PASSWORD = "plum-orbit-candle-42"
SECRET_KEY = "test-secret-key-" + "x" * 40
ENCRYPTION_KEY = base64.urlsafe_b64encode(b"e" * 32).decode()


def api_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings of a test app: cheap Argon2, generous rate limits (unless overridden)."""
    values: dict[str, Any] = {
        "env": "development",
        "data_dir": data_dir,
        "database_url": database_url,
        "secret_key": SECRET_KEY,
        "encryption_key": ENCRYPTION_KEY,
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 1024,
        "password_hash_parallelism": 1,
        "rate_limit_per_ip": "100000/minute",
        "rate_limit_per_principal": "100000/minute",
        "rate_limit_auth": "100000/minute",
        "public_url": "http://testserver",
    }
    values.update(overrides)
    return Settings(**values)


@dataclass(frozen=True)
class Account:
    """A user registered through the API, with their personal workspace and tokens."""

    email: str
    password: str
    user_id: str
    workspace_id: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def in_workspace(self, workspace_id: str) -> dict[str, str]:
        return {**self.headers, "X-Workspace-ID": workspace_id}


def new_email(label: str = "user") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}@example.com"


async def register(
    client: httpx.AsyncClient, *, email: str | None = None, name: str = "Test User"
) -> Account:
    email = email or new_email()
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(
        email=email,
        password=PASSWORD,
        user_id=body["user"]["id"],
        workspace_id=body["workspace"]["id"],
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
    )


async def make_admin(container: Container, user_id: str) -> None:
    """Make a user a platform admin (there is no API for it: it is an operator's act)."""
    from sqlalchemy import update

    from linkflow.store import User

    async with container.database.transaction() as session:
        await session.execute(
            update(User).where(User.id == uuid.UUID(user_id)).values(is_admin=True)
        )


async def join(
    client: httpx.AsyncClient,
    owner: Account,
    member: Account,
    workspace_id: str,
    role: str = "member",
) -> str:
    """Invite `member` into `workspace_id` with `role` and accept; returns the member id."""
    invited = await client.post(
        f"/api/v1/workspaces/{workspace_id}/members",
        json={"email": member.email, "role": role},
        headers=owner.headers,
    )
    assert invited.status_code == 201, invited.text
    accepted = await client.post(
        "/api/v1/workspaces/invitations/accept",
        json={"token": invited.json()["invite_token"]},
        headers=member.headers,
    )
    assert accepted.status_code == 200, accepted.text
    member_id: str = accepted.json()["id"]
    return member_id


async def team(client: httpx.AsyncClient, owner: Account, name: str = "Team") -> str:
    """A new (non-personal) workspace owned by `owner`; returns its id."""
    response = await client.post("/api/v1/workspaces", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.text
    workspace_id: str = response.json()["id"]
    return workspace_id


async def api_key(
    client: httpx.AsyncClient, account: Account, scopes: list[str], workspace_id: str | None = None
) -> dict[str, Any]:
    headers = account.in_workspace(workspace_id) if workspace_id else account.headers
    response = await client.post(
        "/api/v1/api-keys", json={"name": "test key", "scopes": scopes}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout_s: float = 10.0,
    what: str = "the condition",
) -> T:
    """Poll `check` until it returns something other than None; fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)
