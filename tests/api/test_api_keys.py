"""API keys: shown once, stored hashed, bound to one workspace and their scopes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update

from linkflow.store import ApiKey, utcnow
from tests.api._support import api_key, join, register, team
from tests.api.conftest import Api


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class TestApiKeys:
    async def test_a_key_is_shown_once_and_stored_hashed(self, api: Api):
        """lf_ + prefix + secret in the response; only the prefix and an HMAC in the database."""
        owner = await register(api.client)
        created = await api_key(api.client, owner, ["workflows:read"])
        key = created["key"]
        assert key.startswith("lf_")
        assert key.startswith(created["prefix"])
        assert created["workspace_id"] == owner.workspace_id
        async with api.container.database.session() as session:
            row = await session.get(ApiKey, uuid.UUID(created["id"]))
        assert row is not None
        assert key not in row.key_hash
        assert row.prefix == created["prefix"]
        listed = (await api.client.get("/api/v1/api-keys", headers=owner.headers)).json()
        assert [k["id"] for k in listed["data"]] == [created["id"]]
        assert "key" not in listed["data"][0]

    async def test_a_key_authenticates_as_its_creator_and_records_its_use(self, api: Api):
        """GET /users/me with the key is the creator; last_used_at is set."""
        owner = await register(api.client)
        created = await api_key(api.client, owner, ["workflows:read"])
        me = await api.client.get("/api/v1/users/me", headers=bearer(created["key"]))
        assert me.status_code == 200
        assert me.json()["id"] == owner.user_id
        async with api.container.database.session() as session:
            row = await session.get(ApiKey, uuid.UUID(created["id"]))
        assert row is not None
        assert row.last_used_at is not None

    async def test_a_revoked_expired_or_tampered_key_is_refused(self, api: Api):
        """401 invalid_token in every case."""
        owner = await register(api.client)
        revoked = await api_key(api.client, owner, ["workflows:read"])
        deleted = await api.client.delete(
            f"/api/v1/api-keys/{revoked['id']}", headers=owner.headers
        )
        assert deleted.status_code == 204
        expired = await api_key(api.client, owner, ["workflows:read"])
        async with api.container.database.transaction() as session:
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == uuid.UUID(expired["id"]))
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        live = (await api_key(api.client, owner, ["workflows:read"]))["key"]
        tampered = live[:-1] + ("A" if live[-1] != "A" else "B")
        for key in (revoked["key"], expired["key"], tampered):
            response = await api.client.get("/api/v1/users/me", headers=bearer(key))
            assert response.status_code == 401
            assert response.json()["code"] == "invalid_token"

    async def test_an_expiry_in_the_past_or_an_unknown_scope_is_refused(
        self, client: httpx.AsyncClient
    ):
        """422 for both."""
        owner = await register(client)
        past = datetime.now(UTC) - timedelta(days=1)
        for body in (
            {"name": "k", "scopes": ["workflows:read"], "expires_at": past.isoformat()},
            {"name": "k", "scopes": ["everything"]},
            {"name": "k", "scopes": []},
        ):
            response = await client.post("/api/v1/api-keys", json=body, headers=owner.headers)
            assert response.status_code == 422, body

    async def test_a_key_works_only_in_its_own_workspace(self, client: httpx.AsyncClient):
        """X-Workspace-ID naming another workspace of the same user: 404."""
        owner = await register(client)
        other = await team(client, owner)
        key = (await api_key(client, owner, ["admin"]))["key"]
        here = await client.get("/api/v1/workspaces/current", headers=bearer(key))
        assert here.json()["id"] == owner.workspace_id
        there = await client.get(
            "/api/v1/workspaces/current", headers={**bearer(key), "X-Workspace-ID": other}
        )
        assert there.status_code == 404
        direct = await client.get(f"/api/v1/workspaces/{other}", headers=bearer(key))
        assert direct.status_code == 404
        listed = (await client.get("/api/v1/workspaces", headers=bearer(key))).json()["data"]
        assert [w["id"] for w in listed] == [owner.workspace_id]

    async def test_a_key_stops_working_when_its_creator_leaves(self, client: httpx.AsyncClient):
        """Removing the creator from the workspace kills their keys there."""
        owner, member = await register(client), await register(client)
        workspace = await team(client, owner)
        member_id = await join(client, owner, member, workspace)
        key = (await api_key(client, member, ["workflows:read"], workspace))["key"]
        assert (await client.get("/api/v1/users/me", headers=bearer(key))).status_code == 200
        await client.delete(
            f"/api/v1/workspaces/{workspace}/members/{member_id}", headers=owner.headers
        )
        assert (await client.get("/api/v1/users/me", headers=bearer(key))).status_code == 401

    async def test_a_key_cannot_grant_more_than_it_has(self, client: httpx.AsyncClient):
        """An admin-scoped key may create keys, only with scopes it holds itself."""
        owner = await register(client)
        key = (await api_key(client, owner, ["admin", "workflows:read"]))["key"]
        narrower = await client.post(
            "/api/v1/api-keys",
            headers=bearer(key),
            json={"name": "n", "scopes": ["workflows:read"]},
        )
        assert narrower.status_code == 201
        wider = await client.post(
            "/api/v1/api-keys",
            headers=bearer(key),
            json={"name": "w", "scopes": ["credentials:write"]},
        )
        assert wider.status_code == 403
        assert wider.json()["code"] == "insufficient_scope"

    async def test_members_see_their_own_keys_and_admins_all(self, client: httpx.AsyncClient):
        """A member lists and revokes only their keys; an admin every key."""
        owner, member = await register(client), await register(client)
        workspace = await team(client, owner)
        await join(client, owner, member, workspace)
        mine = await api_key(client, member, ["workflows:read"], workspace)
        theirs = await api_key(client, owner, ["workflows:read"], workspace)
        member_list = (
            await client.get("/api/v1/api-keys", headers=member.in_workspace(workspace))
        ).json()
        assert [k["id"] for k in member_list["data"]] == [mine["id"]]
        owner_list = (
            await client.get("/api/v1/api-keys", headers=owner.in_workspace(workspace))
        ).json()
        assert {k["id"] for k in owner_list["data"]} == {mine["id"], theirs["id"]}
        forbidden = await client.delete(
            f"/api/v1/api-keys/{theirs['id']}", headers=member.in_workspace(workspace)
        )
        assert forbidden.status_code == 404
        allowed = await client.delete(
            f"/api/v1/api-keys/{mine['id']}", headers=owner.in_workspace(workspace)
        )
        assert allowed.status_code == 204

    async def test_viewers_cannot_create_keys(self, client: httpx.AsyncClient):
        """403 insufficient_role."""
        owner, viewer = await register(client), await register(client)
        workspace = await team(client, owner)
        await join(client, owner, viewer, workspace, "viewer")
        response = await client.post(
            "/api/v1/api-keys",
            json={"name": "v", "scopes": ["admin"]},
            headers=viewer.in_workspace(workspace),
        )
        assert response.status_code == 403

    async def test_account_actions_refuse_api_keys(self, client: httpx.AsyncClient):
        """MFA set-up, profile changes and logout need a user's login: 403."""
        owner = await register(client)
        key = (await api_key(client, owner, ["admin"]))["key"]
        for method, path, body in (
            ("POST", "/api/v1/auth/mfa/setup", None),
            ("PUT", "/api/v1/users/me", {"name": "x"}),
            ("POST", "/api/v1/auth/logout", None),
            ("POST", "/api/v1/workspaces", {"name": "x"}),
        ):
            response = await client.request(method, path, json=body, headers=bearer(key))
            assert response.status_code == 403, path
            assert response.json()["code"] == "api_key_not_allowed"

    async def test_last_used_is_written_at_most_once_a_minute(self, api: Api):
        """Two uses in a row write the timestamp once."""
        owner = await register(api.client)
        created = await api_key(api.client, owner, ["workflows:read"])
        await api.client.get("/api/v1/users/me", headers=bearer(created["key"]))
        async with api.container.database.session() as session:
            first = await session.scalar(
                select(ApiKey.last_used_at).where(ApiKey.id == uuid.UUID(created["id"]))
            )
        await api.client.get("/api/v1/users/me", headers=bearer(created["key"]))
        async with api.container.database.session() as session:
            second = await session.scalar(
                select(ApiKey.last_used_at).where(ApiKey.id == uuid.UUID(created["id"]))
            )
        assert first is not None
        assert first == second
