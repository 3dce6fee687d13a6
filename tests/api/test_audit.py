"""The audit log: every change recorded with who, what, from where; secrets redacted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.api._support import PASSWORD, api_key, join, make_admin, register, team
from tests.api.conftest import Api


async def entries(client: httpx.AsyncClient, headers: dict[str, str], **params: object):
    response = await client.get("/api/v1/audit-logs", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


class TestAuditLog:
    async def test_changes_to_a_workspace_are_recorded_with_actor_and_origin(
        self, client: httpx.AsyncClient
    ):
        """Create, invite, join, role change, key creation and revocation all appear."""
        owner, member = await register(client), await register(client)
        workspace = await team(client, owner)
        member_id = await join(client, owner, member, workspace)
        await client.put(
            f"/api/v1/workspaces/{workspace}/members/{member_id}",
            json={"role": "admin"},
            headers=owner.headers,
        )
        key = await api_key(client, owner, ["workflows:read"], workspace)
        await client.delete(f"/api/v1/api-keys/{key['id']}", headers=owner.in_workspace(workspace))
        headers = {**owner.in_workspace(workspace), "User-Agent": "audit-test/1.0"}
        await client.put(
            f"/api/v1/workspaces/{workspace}", json={"name": "Renamed"}, headers=headers
        )
        log = (await entries(client, owner.in_workspace(workspace)))["data"]
        actions = [entry["action"] for entry in log]
        for action in (
            "workspace.created",
            "member.created",
            "member.invited",
            "member.joined",
            "member.updated",
            "api_key.created",
            "api_key.revoked",
            "workspace.updated",
        ):
            assert action in actions, action
        renamed = log[0]
        assert renamed["action"] == "workspace.updated"
        assert renamed["actor_user_id"] == owner.user_id
        assert renamed["old_values"]["name"] == "Team"
        assert renamed["new_values"]["name"] == "Renamed"
        assert renamed["ip_address"] == "127.0.0.1"
        assert renamed["user_agent"] == "audit-test/1.0"
        assert renamed["request_id"]
        role = next(e for e in log if e["action"] == "member.updated")
        assert (role["old_values"]["role"], role["new_values"]["role"]) == ("member", "admin")

    async def test_secrets_never_reach_the_log(self, api: Api):
        """No password, hash, key or token value appears in any entry."""
        owner = await register(api.client)
        await make_admin(api.container, owner.user_id)
        created = await api_key(api.client, owner, ["workflows:read"])
        await api.client.put(
            "/api/v1/users/me",
            headers=owner.headers,
            json={"new_password": "pepper-window-orchard-5", "current_password": PASSWORD},
        )
        text = str(await entries(api.client, owner.headers)) + str(
            await entries(api.client, owner.headers, instance="true", limit=200)
        )
        for secret in (
            PASSWORD,
            "pepper-window-orchard-5",
            created["key"],
            "$argon2id$",
            owner.refresh_token,
        ):
            assert secret not in text
        assert "[redacted]" in text

    async def test_filters_and_pages(self, client: httpx.AsyncClient):
        """By action, resource type, actor and time; a cursor walks the rest."""
        owner = await register(client)
        for name in ("a", "b", "c"):
            await client.put(
                f"/api/v1/workspaces/{owner.workspace_id}",
                json={"name": name},
                headers=owner.headers,
            )
        updated = await entries(client, owner.headers, action="workspace.updated", limit=2)
        assert len(updated["data"]) == 2
        assert updated["next_cursor"]
        rest = await entries(
            client, owner.headers, action="workspace.updated", cursor=updated["next_cursor"]
        )
        names = [e["new_values"]["name"] for e in updated["data"] + rest["data"]]
        assert names == ["c", "b", "a"]
        members = await entries(client, owner.headers, resource_type="workspace_member")
        assert {e["action"] for e in members["data"]} == {"member.created"}
        mine = await entries(client, owner.headers, actor_id=owner.user_id)
        assert len(mine["data"]) == 5
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert (await entries(client, owner.headers, since=future))["data"] == []
        assert len((await entries(client, owner.headers, until=future))["data"]) == 5

    async def test_only_admins_read_the_log(self, client: httpx.AsyncClient):
        """Members: 403; platform-level entries: platform admins only."""
        owner, member = await register(client), await register(client)
        workspace = await team(client, owner)
        await join(client, owner, member, workspace)
        response = await client.get("/api/v1/audit-logs", headers=member.in_workspace(workspace))
        assert response.status_code == 403
        instance = await client.get(
            "/api/v1/audit-logs", params={"instance": "true"}, headers=member.headers
        )
        assert instance.status_code == 403

    async def test_user_changes_are_instance_level_entries(self, api: Api):
        """Registration and profile changes are listed for platform admins with instance=true."""
        admin = await register(api.client)
        await make_admin(api.container, admin.user_id)
        await api.client.put("/api/v1/users/me", json={"name": "Boss"}, headers=admin.headers)
        log = await entries(
            api.client, admin.headers, instance="true", resource_type="user", actor_id=admin.user_id
        )
        assert [e["action"] for e in log["data"]] == ["user.updated", "user.created"]
