"""Credentials at rest and in the worker: sealed whole and bound to their row, resolved
within one workspace, OAuth2 tokens refreshed and stored, every secret re-sealed by
key rotation without a moment where a reader cannot open it.

Every test runs on SQLite and on PostgreSQL (the `database` fixture), in a
database shared by the module, so each test creates its own workspaces and
uses its own keys where it rotates.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
from sqlalchemy import select, update

from linkflow.nodes.sdk import NodeError
from linkflow.security.rbac import Role, permissions_for
from linkflow.security.secretbox import SecretBox, SecretBoxError, key_id_for
from linkflow.security.ssrf import AddressPolicy, guarded_client
from linkflow.services.context import Actor, Principal, RequestInfo, WorkspaceAccess
from linkflow.services.credential_resolver import ExecutionCredentials, WorkspaceCredentials
from linkflow.services.credentials import Credentials
from linkflow.services.errors import Unavailable
from linkflow.services.key_rotation import rotate
from linkflow.store import Credential, Database, User, Webhook, Workspace
from tests._http_server import Recorded, Reply, serve
from tests.integration._rows import new_workflow

KEY = b"k" * 32


@dataclass
class Owner:
    access: WorkspaceAccess
    actor: Actor

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.access.workspace_id


async def new_owner(database: Database) -> Owner:
    """A user and the workspace they own, committed."""
    async with database.transaction() as session:
        user = User(email=f"{uuid.uuid4().hex}@example.com")
        session.add(user)
        await session.flush()
        workspace = Workspace(name="Team", slug=uuid.uuid4().hex, owner_id=user.id)
        session.add(workspace)
        await session.flush()
    principal = Principal(user=user)
    access = WorkspaceAccess(workspace.id, Role.OWNER, permissions_for(Role.OWNER), principal)
    return Owner(access, principal.actor(RequestInfo()))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def service(database: Database, http: httpx.AsyncClient, box: SecretBox) -> Credentials:
    return Credentials(database, box, http, AddressPolicy(allow_private=True))


async def stored(database: Database, credential_id: uuid.UUID) -> Credential:
    async with database.session() as session:
        row = await session.get(Credential, credential_id)
    assert row is not None
    return row


class TestSealing:
    async def test_data_is_sealed_whole_under_the_current_key(
        self, database: Database, http: httpx.AsyncClient
    ):
        """No field (secret or not) is readable in the row; key_id names the sealing key."""
        box = SecretBox.from_key(KEY)
        owner = await new_owner(database)
        view = await service(database, http, box).create(
            owner.access,
            owner.actor,
            name="gh",
            type="basic",
            data={"username": "octo-user", "password": "hunter2-secret"},
        )
        row = await stored(database, view.id)
        assert b"hunter2-secret" not in row.data_encrypted
        assert b"octo-user" not in row.data_encrypted
        assert row.key_id == key_id_for(KEY) == box.current_key_id

    async def test_a_ciphertext_copied_into_another_row_does_not_open(
        self, database: Database, http: httpx.AsyncClient
    ):
        """The associated data binds a ciphertext to its credential id."""
        box = SecretBox.from_key(KEY)
        owner = await new_owner(database)
        credentials = service(database, http, box)
        first = await credentials.create(
            owner.access, owner.actor, name="a", type="bearer", data={"token": "token-of-a"}
        )
        second = await credentials.create(
            owner.access, owner.actor, name="b", type="bearer", data={"token": "token-of-b"}
        )
        sealed_a = (await stored(database, first.id)).data_encrypted
        async with database.transaction() as session:
            await session.execute(
                update(Credential).where(Credential.id == second.id).values(data_encrypted=sealed_a)
            )
        with pytest.raises(Unavailable) as caught:
            await credentials.get(owner.access, second.id)
        assert caught.value.code == "credential_key_unavailable"
        resolver = WorkspaceCredentials(database, box, owner.workspace_id, http)
        with pytest.raises(NodeError):
            await resolver.resolve("b")

    async def test_a_row_sealed_with_a_key_this_server_lacks_is_unavailable(
        self, database: Database, http: httpx.AsyncClient
    ):
        """Loud (503, naming the key id), never an empty credential."""
        owner = await new_owner(database)
        view = await service(database, http, SecretBox.from_key(KEY)).create(
            owner.access, owner.actor, name="k", type="bearer", data={"token": "t-123"}
        )
        other = service(database, http, SecretBox.from_key(b"o" * 32))
        with pytest.raises(Unavailable, match=key_id_for(KEY)):
            await other.get(owner.access, view.id)


class TestResolver:
    async def test_resolves_by_id_and_by_name_with_the_type(
        self, database: Database, http: httpx.AsyncClient
    ):
        """{"type": ..., **fields}, decrypted."""
        box = SecretBox.from_key(KEY)
        owner = await new_owner(database)
        view = await service(database, http, box).create(
            owner.access, owner.actor, name="api", type="api_key", data={"value": "v-secret"}
        )
        resolver = WorkspaceCredentials(database, box, owner.workspace_id, http)
        expected = {"type": "api_key", "value": "v-secret", "name": "X-API-Key", "in": "header"}
        assert await resolver.resolve(str(view.id)) == expected
        assert await resolver.resolve("api") == expected

    async def test_another_workspace_deleted_or_unknown_is_a_lookup_error(
        self, database: Database, http: httpx.AsyncClient
    ):
        """Another workspace's credential is indistinguishable from a missing one."""
        box = SecretBox.from_key(KEY)
        owner, stranger = await new_owner(database), await new_owner(database)
        credentials = service(database, http, box)
        theirs = await credentials.create(
            stranger.access, stranger.actor, name="theirs", type="bearer", data={"token": "t-1"}
        )
        gone = await credentials.create(
            owner.access, owner.actor, name="gone", type="bearer", data={"token": "t-2"}
        )
        await credentials.delete(owner.access, owner.actor, gone.id)
        resolver = WorkspaceCredentials(database, box, owner.workspace_id, http)
        for reference in (
            str(theirs.id),
            "theirs",
            str(gone.id),
            "gone",
            "nope",
            str(uuid.uuid4()),
        ):
            with pytest.raises(LookupError):
                await resolver.resolve(reference)

    async def test_last_used_at_is_written_at_most_once_a_minute(
        self, database: Database, http: httpx.AsyncClient
    ):
        """A second use within the minute writes nothing; a use after it does; updated_at stays."""
        box = SecretBox.from_key(KEY)
        owner = await new_owner(database)
        view = await service(database, http, box).create(
            owner.access, owner.actor, name="used", type="bearer", data={"token": "t-3"}
        )
        resolver = WorkspaceCredentials(database, box, owner.workspace_id, http)
        await resolver.resolve("used")
        first = await stored(database, view.id)
        assert first.last_used_at is not None
        assert first.updated_at == view.updated_at
        await resolver.resolve("used")
        assert (await stored(database, view.id)).last_used_at == first.last_used_at
        long_ago = datetime.now(UTC) - timedelta(minutes=2)
        async with database.transaction() as session:
            await session.execute(
                update(Credential).where(Credential.id == view.id).values(last_used_at=long_ago)
            )
        moved = await stored(database, view.id)
        await WorkspaceCredentials(database, box, owner.workspace_id, http).resolve("used")
        later = await stored(database, view.id)
        assert later.last_used_at is not None
        assert later.last_used_at > long_ago
        assert later.updated_at == moved.updated_at

    async def test_the_execution_resolver_uses_the_bound_workspace(
        self, database: Database, http: httpx.AsyncClient
    ):
        """Unbound: nothing resolves; bound: that workspace only, also in child tasks."""
        box = SecretBox.from_key(KEY)
        owner, stranger = await new_owner(database), await new_owner(database)
        await service(database, http, box).create(
            owner.access, owner.actor, name="mine", type="bearer", data={"token": "t-4"}
        )
        resolver = ExecutionCredentials(database, box, http)
        with pytest.raises(LookupError):
            await resolver.resolve("mine")
        with resolver.bound(owner.workspace_id):
            assert (await resolver.resolve("mine"))["token"] == "t-4"
            child = asyncio.create_task(resolver.resolve("mine"))
            assert (await child)["token"] == "t-4"
        with resolver.bound(stranger.workspace_id), pytest.raises(LookupError):
            await resolver.resolve("mine")


def token_endpoint(answers: list[Reply]) -> dict[str, object]:
    """Routes of a token endpoint that gives `answers` in order (the last one repeats)."""

    def token(_request: Recorded) -> Reply:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return {"/token": token}


def form(request: Recorded) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(request.body.decode()).items()}


class TestOAuth2:
    async def test_an_expired_token_is_refreshed_once_and_stored_sealed(
        self, database: Database, http: httpx.AsyncClient
    ):
        """Concurrent uses share one refresh; the rotated refresh token is kept."""
        box = SecretBox.from_key(KEY)
        owner = await new_owner(database)
        fresh = Reply.json(
            {
                "access_token": "new-access",
                "refresh_token": "new-refresh",
                "expires_in": 3600,
                "token_type": "Bearer",
            }
        )
        with serve(token_endpoint([fresh])) as server:  # type: ignore[arg-type]
            view = await service(database, http, box).create(
                owner.access,
                owner.actor,
                name="oauth",
                type="oauth2",
                data={
                    "client_id": "cid",
                    "client_secret": "csecret",
                    "token_url": server.url("/token"),
                    "access_token": "old-access",
                    "refresh_token": "old-refresh",
                    "scope": "read",
                    "expires_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
                },
            )
            resolver = WorkspaceCredentials(database, box, owner.workspace_id, http)
            results = await asyncio.gather(*(resolver.resolve("oauth") for _ in range(5)))
        assert [r["access_token"] for r in results] == ["new-access"] * 5
        assert len(server.hits("/token")) == 1
        assert form(server.hits("/token")[0]) == {
            "grant_type": "refresh_token",
            "refresh_token": "old-refresh",
            "client_id": "cid",
            "client_secret": "csecret",
            "scope": "read",
        }
        row = await stored(database, view.id)
        assert b"new-access" not in row.data_encrypted
        again = await WorkspaceCredentials(database, box, owner.workspace_id, http).resolve(
            str(view.id)
        )
        assert again["refresh_token"] == "new-refresh"
        expires = datetime.fromisoformat(again["expires_at"])
        assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)

    async def test_a_token_that_is_still_valid_is_not_refreshed(
        self, database: Database, http: httpx.AsyncClient
    ):
        """No request to the token endpoint."""
        box = SecretBox.from_key(KEY)
        owner = await new_owner(database)
        with serve(token_endpoint([Reply(500)])) as server:
            await service(database, http, box).create(
                owner.access,
                owner.actor,
                name="valid",
                type="oauth2",
                data={
                    "client_id": "cid",
                    "token_url": server.url("/token"),
                    "access_token": "still-good",
                    "refresh_token": "r",
                    "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                },
            )
            resolver = WorkspaceCredentials(database, box, owner.workspace_id, http)
            assert (await resolver.resolve("valid"))["access_token"] == "still-good"
        assert server.requests == []

    async def test_a_refused_refresh_fails_the_node_without_showing_secrets(
        self, database: Database, http: httpx.AsyncClient
    ):
        """invalid_grant: a non-retryable NodeError naming the OAuth error only."""
        box = SecretBox.from_key(KEY)
        owner = await new_owner(database)
        refused = Reply.json({"error": "invalid_grant"}, status=400)
        with serve(token_endpoint([refused])) as server:
            await service(database, http, box).create(
                owner.access,
                owner.actor,
                name="refused",
                type="oauth2",
                data={
                    "client_id": "cid",
                    "client_secret": "csecret-x",
                    "token_url": server.url("/token"),
                    "refresh_token": "refresh-x",
                },
            )
            resolver = WorkspaceCredentials(database, box, owner.workspace_id, http)
            with pytest.raises(NodeError) as caught:
                await resolver.resolve("refused")
        assert "invalid_grant" in str(caught.value)
        assert not caught.value.retryable
        assert "refresh-x" not in str(caught.value)
        assert "csecret-x" not in str(caught.value)


class TestKeyRotation:
    async def test_everything_opens_with_the_new_key_only_after_rotate_and_nothing_is_lost(
        self, database: Database, http: httpx.AsyncClient
    ):
        """Credentials (deleted ones too), webhook secrets and MFA secrets are re-sealed;
        a second run has nothing left to do; edits' timestamps are untouched."""
        old_key, new_key = os.urandom(32), os.urandom(32)
        old_box, new_box = SecretBox.from_key(old_key), SecretBox.from_key(new_key)
        owner = await new_owner(database)
        credentials = service(database, http, old_box)
        kept = await credentials.create(
            owner.access,
            owner.actor,
            name="kept",
            type="header",
            data={"name": "X-Key", "value": "header-secret"},
        )
        deleted = await credentials.create(
            owner.access,
            owner.actor,
            name="deleted",
            type="bearer",
            data={"token": "deleted-secret"},
        )
        await credentials.delete(owner.access, owner.actor, deleted.id)
        workflow = await new_workflow(database, owner.workspace_id)
        user_id = owner.access.principal.user_id
        async with database.transaction() as session:
            webhook = Webhook(
                workspace_id=owner.workspace_id,
                workflow_id=workflow.id,
                node_id="hook",
                secret_encrypted=old_box.seal(b"hmac-secret"),
            )
            session.add(webhook)
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(
                    mfa_secret_encrypted=old_box.seal(b"TOTPSECRET", f"user:{user_id}:mfa".encode())
                )
            )
        before = await stored(database, kept.id)

        assert await rotate(database, old_box, new_box) == 4
        assert await rotate(database, old_box, new_box) == 0

        new_only = service(database, http, new_box)
        assert (await new_only.get(owner.access, kept.id)).data["name"] == "X-Key"
        resolver = WorkspaceCredentials(database, new_box, owner.workspace_id, http)
        assert (await resolver.resolve("kept"))["value"] == "header-secret"
        with pytest.raises(Unavailable):
            await service(database, http, old_box).get(owner.access, kept.id)
        after = await stored(database, kept.id)
        assert after.key_id == new_box.current_key_id
        assert after.updated_at == before.updated_at
        gone = await stored(database, deleted.id)
        assert gone.key_id == new_box.current_key_id
        async with database.session() as session:
            hook = await session.get(Webhook, webhook.id)
            user = await session.get(User, user_id)
        assert hook is not None
        assert hook.secret_encrypted is not None
        assert new_box.open(hook.secret_encrypted) == b"hmac-secret"
        assert user is not None
        assert user.mfa_secret_encrypted is not None
        mfa_aad = f"user:{user_id}:mfa".encode()
        assert new_box.open(user.mfa_secret_encrypted, mfa_aad) == b"TOTPSECRET"
        with pytest.raises(SecretBoxError):
            old_box.open(user.mfa_secret_encrypted, mfa_aad)

    async def test_readers_holding_both_keys_never_fail_during_a_rotation(
        self, database: Database, http: httpx.AsyncClient
    ):
        """The zero-downtime set-up: processes open with either key while rows move."""
        old_key, new_key = os.urandom(32), os.urandom(32)
        old_box = SecretBox.from_key(old_key)
        new_box = SecretBox.from_key(new_key)
        both = SecretBox(
            {key_id_for(old_key): old_key, key_id_for(new_key): new_key},
            current=key_id_for(new_key),
        )
        owner = await new_owner(database)
        credentials = service(database, http, old_box)
        names = [f"c{index}" for index in range(12)]
        for name in names:
            await credentials.create(
                owner.access, owner.actor, name=name, type="bearer", data={"token": f"token-{name}"}
            )
        resolver = WorkspaceCredentials(database, both, owner.workspace_id, http)
        rotation = asyncio.create_task(rotate(database, old_box, new_box))
        reads = 0
        while not rotation.done() or reads == 0:
            name = names[reads % len(names)]
            assert (await resolver.resolve(name))["token"] == f"token-{name}"
            reads += 1
        assert await rotation == len(names)
        async with database.session() as session:
            rows = (
                await session.scalars(
                    select(Credential).where(Credential.workspace_id == owner.workspace_id)
                )
            ).all()
        assert {row.key_id for row in rows} == {new_box.current_key_id}
        decoded = [
            json.loads(new_box.open(row.data_encrypted, f"credential:{row.id}".encode()))
            for row in rows
        ]
        assert sorted(item["token"] for item in decoded) == sorted(f"token-{n}" for n in names)
