"""Users: one's profile, fellow members, and the admin list."""

from __future__ import annotations

import uuid

import httpx

from tests.api._support import PASSWORD, join, make_admin, new_email, register, team
from tests.api.conftest import Api


class TestMe:
    async def test_me_is_the_caller_without_secrets(self, client: httpx.AsyncClient):
        """The profile carries no hash, MFA secret or recovery code."""
        account = await register(client, name="Mae")
        body = (await client.get("/api/v1/users/me", headers=account.headers)).json()
        assert body["email"] == account.email
        assert body["name"] == "Mae"
        assert not {"password_hash", "mfa_secret_encrypted", "mfa_recovery_codes"} & set(body)

    async def test_me_needs_authentication(self, client: httpx.AsyncClient):
        """No Authorization header: 401 problem with WWW-Authenticate."""
        response = await client.get("/api/v1/users/me")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="linkflow"'

    async def test_the_name_changes_without_a_password(self, client: httpx.AsyncClient):
        """PUT /users/me {name}: 200 and the new name."""
        account = await register(client)
        response = await client.put(
            "/api/v1/users/me", json={"name": "Renamed"}, headers=account.headers
        )
        assert response.status_code == 200
        assert response.json()["name"] == "Renamed"

    async def test_email_and_password_changes_need_the_current_password(
        self, client: httpx.AsyncClient
    ):
        """Without it: 422 invalid_password; with it: the new password logs in."""
        account = await register(client)
        refused = await client.put(
            "/api/v1/users/me", json={"email": new_email()}, headers=account.headers
        )
        assert refused.status_code == 422
        assert refused.json()["code"] == "invalid_password"
        new_address = new_email("moved")
        changed = await client.put(
            "/api/v1/users/me",
            json={
                "email": new_address,
                "new_password": "saffron-kettle-bridge-7",
                "current_password": PASSWORD,
            },
            headers=account.headers,
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["email"] == new_address
        login = await client.post(
            "/api/v1/auth/login",
            json={"email": new_address, "password": "saffron-kettle-bridge-7"},
        )
        assert login.status_code == 200
        # The session that made the change goes on.
        assert (await client.get("/api/v1/users/me", headers=account.headers)).status_code == 200

    async def test_a_taken_email_or_weak_password_is_refused(self, client: httpx.AsyncClient):
        """409 email_taken; 422 weak_password."""
        account, other = await register(client), await register(client)
        taken = await client.put(
            "/api/v1/users/me",
            json={"email": other.email, "current_password": PASSWORD},
            headers=account.headers,
        )
        assert taken.status_code == 409
        weak = await client.put(
            "/api/v1/users/me",
            json={"new_password": "password1", "current_password": PASSWORD},
            headers=account.headers,
        )
        assert weak.status_code == 422
        assert weak.json()["code"] == "weak_password"


class TestOtherUsers:
    async def test_a_fellow_member_is_visible(self, client: httpx.AsyncClient):
        """Sharing a workspace: 200 with the public profile."""
        owner, member = await register(client), await register(client)
        await join(client, owner, member, await team(client, owner))
        response = await client.get(f"/api/v1/users/{member.user_id}", headers=owner.headers)
        assert response.status_code == 200
        assert response.json() == {
            "id": member.user_id,
            "email": member.email,
            "name": "Test User",
            "created_at": response.json()["created_at"],
        }

    async def test_a_stranger_is_404(self, client: httpx.AsyncClient):
        """No shared workspace, or no such user: the same 404."""
        one, stranger = await register(client), await register(client)
        hidden = await client.get(f"/api/v1/users/{stranger.user_id}", headers=one.headers)
        missing = await client.get(f"/api/v1/users/{uuid.uuid4()}", headers=one.headers)
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json() == missing.json()

    async def test_a_malformed_id_is_422(self, client: httpx.AsyncClient):
        """Not a UUID: 422 naming path.user_id."""
        account = await register(client)
        response = await client.get("/api/v1/users/not-a-uuid", headers=account.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "path.user_id"


class TestAdminList:
    async def test_platform_admins_list_every_user_in_pages(self, api: Api):
        """A cursor walks the whole list without repeats; ?email= filters."""
        admin = await register(api.client)
        await make_admin(api.container, admin.user_id)
        for _ in range(3):
            await register(api.client)
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (
                await api.client.get("/api/v1/users", params=params, headers=admin.headers)
            ).json()
            seen += [user["id"] for user in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) >= 4
        found = await api.client.get(
            "/api/v1/users", params={"email": admin.email}, headers=admin.headers
        )
        assert [user["id"] for user in found.json()["data"]] == [admin.user_id]

    async def test_others_may_not_list_users(self, api: Api):
        """A user who is not a platform admin: 403 admin_required."""
        await register(api.client)  # the instance's first user, its admin, may exist already
        account = await register(api.client)
        response = await api.client.get("/api/v1/users", headers=account.headers)
        assert response.status_code == 403
        assert response.json()["code"] == "admin_required"

    async def test_a_bad_cursor_is_422(self, api: Api):
        """A cursor this API did not make: 422 invalid_cursor."""
        admin = await register(api.client)
        await make_admin(api.container, admin.user_id)
        response = await api.client.get(
            "/api/v1/users", params={"cursor": "garbage!"}, headers=admin.headers
        )
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_cursor"
