"""Workspaces and members: CRUD, invitations, roles, the last owner, RBAC."""

from __future__ import annotations

import uuid

import httpx

from tests.api._support import join, new_email, register, team


class TestWorkspaces:
    async def test_create_read_update_delete(self, client: httpx.AsyncClient):
        """The creator owns it; it lists, reads, renames, and disappears when deleted."""
        owner = await register(client)
        created = await client.post(
            "/api/v1/workspaces",
            json={"name": "Ops", "slug": f"ops-{uuid.uuid4().hex[:8]}"},
            headers=owner.headers,
        )
        assert created.status_code == 201
        workspace = created.json()
        assert workspace["role"] == "owner"
        assert workspace["is_personal"] is False
        url = f"/api/v1/workspaces/{workspace['id']}"
        listed = (await client.get("/api/v1/workspaces", headers=owner.headers)).json()
        assert {w["id"] for w in listed["data"]} == {owner.workspace_id, workspace["id"]}
        renamed = await client.put(
            url, json={"name": "Operations", "settings": {"tz": "UTC"}}, headers=owner.headers
        )
        assert renamed.json()["name"] == "Operations"
        assert renamed.json()["settings"] == {"tz": "UTC"}
        assert (await client.delete(url, headers=owner.headers)).status_code == 204
        assert (await client.get(url, headers=owner.headers)).status_code == 404

    async def test_a_taken_slug_is_a_conflict(self, client: httpx.AsyncClient):
        """409 slug_taken."""
        owner = await register(client)
        slug = f"dup-{uuid.uuid4().hex[:8]}"
        first = await client.post(
            "/api/v1/workspaces", json={"name": "A", "slug": slug}, headers=owner.headers
        )
        assert first.status_code == 201
        second = await client.post(
            "/api/v1/workspaces", json={"name": "B", "slug": slug}, headers=owner.headers
        )
        assert second.status_code == 409
        assert second.json()["code"] == "slug_taken"

    async def test_the_personal_workspace_cannot_be_deleted(self, client: httpx.AsyncClient):
        """409 personal_workspace."""
        owner = await register(client)
        response = await client.delete(
            f"/api/v1/workspaces/{owner.workspace_id}", headers=owner.headers
        )
        assert response.status_code == 409
        assert response.json()["code"] == "personal_workspace"

    async def test_the_workspace_context_comes_from_the_header_or_the_default(
        self, client: httpx.AsyncClient
    ):
        """No header: the personal workspace; X-Workspace-ID: that one; a stranger's: 404."""
        owner, stranger = await register(client), await register(client)
        other = await team(client, owner)
        default = await client.get("/api/v1/workspaces/current", headers=owner.headers)
        assert default.json()["id"] == owner.workspace_id
        chosen = await client.get("/api/v1/workspaces/current", headers=owner.in_workspace(other))
        assert chosen.json()["id"] == other
        foreign = await client.get(
            "/api/v1/workspaces/current", headers=owner.in_workspace(stranger.workspace_id)
        )
        assert foreign.status_code == 404
        bad = await client.get("/api/v1/workspaces/current", headers=owner.in_workspace("nope"))
        assert bad.status_code == 422

    async def test_roles_decide_who_updates_and_deletes(self, client: httpx.AsyncClient):
        """Viewers and members may not rename; admins may; only owners delete."""
        owner = await register(client)
        workspace = await team(client, owner)
        url = f"/api/v1/workspaces/{workspace}"
        people = {}
        for role in ("viewer", "member", "admin"):
            people[role] = await register(client)
            await join(client, owner, people[role], workspace, role)
        for role, allowed in (("viewer", False), ("member", False), ("admin", True)):
            response = await client.put(url, json={"name": role}, headers=people[role].headers)
            assert response.status_code == (200 if allowed else 403), role
            if not allowed:
                assert response.json()["code"] == "insufficient_role"
        assert (await client.delete(url, headers=people["admin"].headers)).status_code == 403
        assert (await client.get(url, headers=people["viewer"].headers)).status_code == 200


class TestMembers:
    async def test_invite_accept_list_change_role_and_remove(self, client: httpx.AsyncClient):
        """The whole life of a membership."""
        owner, invitee = await register(client), await register(client)
        workspace = await team(client, owner)
        base = f"/api/v1/workspaces/{workspace}/members"
        invited = await client.post(
            base, json={"email": invitee.email.upper(), "role": "viewer"}, headers=owner.headers
        )
        assert invited.status_code == 201
        assert invited.json()["status"] == "invited"
        assert invited.json()["email"] == invitee.email
        accepted = await client.post(
            "/api/v1/workspaces/invitations/accept",
            json={"token": invited.json()["invite_token"]},
            headers=invitee.headers,
        )
        assert accepted.status_code == 200
        member_id = accepted.json()["id"]
        listed = (await client.get(base, headers=invitee.headers)).json()["data"]
        assert {(m["email"], m["role"], m["status"]) for m in listed} == {
            (owner.email, "owner", "active"),
            (invitee.email, "viewer", "active"),
        }
        changed = await client.put(
            f"{base}/{member_id}", json={"role": "admin"}, headers=owner.headers
        )
        assert changed.json()["role"] == "admin"
        assert (
            await client.delete(f"{base}/{member_id}", headers=owner.headers)
        ).status_code == 204
        gone = await client.get(f"/api/v1/workspaces/{workspace}", headers=invitee.headers)
        assert gone.status_code == 404

    async def test_an_invitation_is_only_for_its_email(self, client: httpx.AsyncClient):
        """Someone else with the token: 404; a made-up token: 404."""
        owner, invitee, thief = [await register(client) for _ in range(3)]
        workspace = await team(client, owner)
        invited = await client.post(
            f"/api/v1/workspaces/{workspace}/members",
            json={"email": invitee.email},
            headers=owner.headers,
        )
        token = invited.json()["invite_token"]
        stolen = await client.post(
            "/api/v1/workspaces/invitations/accept", json={"token": token}, headers=thief.headers
        )
        assert stolen.status_code == 404
        made_up = await client.post(
            "/api/v1/workspaces/invitations/accept",
            json={"token": "made-up"},
            headers=invitee.headers,
        )
        assert made_up.status_code == 404

    async def test_an_invitation_to_someone_not_yet_registered_waits_for_them(
        self, client: httpx.AsyncClient
    ):
        """Invite an address, register it later, accept: a member."""
        owner = await register(client)
        workspace = await team(client, owner)
        email = new_email("later")
        invited = await client.post(
            f"/api/v1/workspaces/{workspace}/members",
            json={"email": email, "role": "member"},
            headers=owner.headers,
        )
        newcomer = await register(client, email=email)
        accepted = await client.post(
            "/api/v1/workspaces/invitations/accept",
            json={"token": invited.json()["invite_token"]},
            headers=newcomer.headers,
        )
        assert accepted.status_code == 200
        assert accepted.json()["role"] == "member"

    async def test_inviting_a_member_again_is_a_conflict(self, client: httpx.AsyncClient):
        """409 already_member."""
        owner, member = await register(client), await register(client)
        workspace = await team(client, owner)
        await join(client, owner, member, workspace)
        again = await client.post(
            f"/api/v1/workspaces/{workspace}/members",
            json={"email": member.email},
            headers=owner.headers,
        )
        assert again.status_code == 409

    async def test_the_last_owner_cannot_leave_or_be_demoted(self, client: httpx.AsyncClient):
        """409 last_owner; with a second owner, the first may leave."""
        owner, second = await register(client), await register(client)
        workspace = await team(client, owner)
        base = f"/api/v1/workspaces/{workspace}/members"
        mine = next(
            m
            for m in (await client.get(base, headers=owner.headers)).json()["data"]
            if m["user_id"] == owner.user_id
        )
        leave = await client.delete(f"{base}/{mine['id']}", headers=owner.headers)
        assert leave.status_code == 409
        assert leave.json()["code"] == "last_owner"
        demote = await client.put(
            f"{base}/{mine['id']}", json={"role": "admin"}, headers=owner.headers
        )
        assert demote.status_code == 409
        await join(client, owner, second, workspace, "owner")
        assert (
            await client.delete(f"{base}/{mine['id']}", headers=owner.headers)
        ).status_code == 204

    async def test_admins_cannot_touch_owners_or_make_them(self, client: httpx.AsyncClient):
        """An admin inviting an owner, demoting or removing one: 403 insufficient_role."""
        owner, admin = await register(client), await register(client)
        workspace = await team(client, owner)
        await join(client, owner, admin, workspace, "admin")
        base = f"/api/v1/workspaces/{workspace}/members"
        members = (await client.get(base, headers=owner.headers)).json()["data"]
        owner_row = next(m for m in members if m["user_id"] == owner.user_id)
        for response in (
            await client.post(
                base, json={"email": new_email(), "role": "owner"}, headers=admin.headers
            ),
            await client.put(
                f"{base}/{owner_row['id']}", json={"role": "viewer"}, headers=admin.headers
            ),
            await client.delete(f"{base}/{owner_row['id']}", headers=admin.headers),
        ):
            assert response.status_code == 403
            assert response.json()["code"] == "insufficient_role"

    async def test_members_may_leave_but_not_remove_others(self, client: httpx.AsyncClient):
        """A member removing someone else: 403; removing themselves: 204."""
        owner, one, two = [await register(client) for _ in range(3)]
        workspace = await team(client, owner)
        one_id = await join(client, owner, one, workspace)
        two_id = await join(client, owner, two, workspace)
        base = f"/api/v1/workspaces/{workspace}/members"
        assert (await client.delete(f"{base}/{two_id}", headers=one.headers)).status_code == 403
        assert (await client.delete(f"{base}/{one_id}", headers=one.headers)).status_code == 204
