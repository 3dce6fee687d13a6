"""Isolation: another workspace's ids are 404 everywhere; a key without the scope is 403.

Both walks are checked against the OpenAPI document, so an endpoint added
later with an id in its path fails here until it is added to the walk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import pytest

from tests.api._support import Account, api_key, join, register, team

ID_IN_PATH = re.compile(r"\{[a-z_]*id\}")


@dataclass
class World:
    """Two tenants: `me` with my workspace and resources, `them` with theirs."""

    me: Account
    mine: str
    my_member: str
    my_key: str
    them: Account
    theirs: str
    their_member: str
    their_key: str
    their_user: str


@pytest.fixture
async def world(client: httpx.AsyncClient) -> World:
    await register(client)  # the instance's first account is its platform admin: not `me`
    me, my_colleague = await register(client), await register(client)
    them, their_colleague = await register(client), await register(client)
    mine, theirs = await team(client, me, "Mine"), await team(client, them, "Theirs")
    my_member = await join(client, me, my_colleague, mine)
    their_member = await join(client, them, their_colleague, theirs)
    my_key = (await api_key(client, me, ["admin"], mine))["id"]
    their_key = (await api_key(client, them, ["admin"], theirs))["id"]
    return World(
        me, mine, my_member, my_key, them, theirs, their_member, their_key, their_colleague.user_id
    )


def foreign_requests(w: World) -> list[tuple[str, str, dict[str, str], object]]:
    """(method, path, extra headers, body): my credentials, their ids."""
    member = f"/api/v1/workspaces/{w.theirs}/members/{w.their_member}"
    mine_their_member = f"/api/v1/workspaces/{w.mine}/members/{w.their_member}"
    in_theirs = {"X-Workspace-ID": w.theirs}
    in_mine = {"X-Workspace-ID": w.mine}
    return [
        ("GET", f"/api/v1/workspaces/{w.theirs}", {}, None),
        ("PUT", f"/api/v1/workspaces/{w.theirs}", {}, {"name": "pwned"}),
        ("DELETE", f"/api/v1/workspaces/{w.theirs}", {}, None),
        ("GET", f"/api/v1/workspaces/{w.theirs}/members", {}, None),
        ("POST", f"/api/v1/workspaces/{w.theirs}/members", {}, {"email": w.me.email}),
        ("PUT", member, {}, {"role": "owner"}),
        ("DELETE", member, {}, None),
        ("PUT", mine_their_member, {}, {"role": "owner"}),
        ("DELETE", mine_their_member, {}, None),
        ("DELETE", f"/api/v1/api-keys/{w.their_key}", in_mine, None),
        ("DELETE", f"/api/v1/api-keys/{w.their_key}", in_theirs, None),
        ("GET", f"/api/v1/users/{w.their_user}", {}, None),
        ("GET", "/api/v1/workspaces/current", in_theirs, None),
        ("GET", "/api/v1/api-keys", in_theirs, None),
        ("POST", "/api/v1/api-keys", in_theirs, {"name": "x", "scopes": ["admin"]}),
        ("GET", "/api/v1/audit-logs", in_theirs, None),
    ]


async def _templates_with_ids(client: httpx.AsyncClient) -> set[tuple[str, str]]:
    document = (await client.get("/openapi.json")).json()
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if ID_IN_PATH.search(path)
        for method in operations
    }


def _template_of(path: str, templates: set[tuple[str, str]], method: str) -> str | None:
    for known_method, template in templates:
        pattern = "^" + ID_IN_PATH.sub("[^/]+", template) + "$"
        if known_method == method and re.match(pattern, path):
            return template
    return None


class TestTenancy:
    async def test_every_id_of_another_workspace_is_404(
        self, client: httpx.AsyncClient, world: World
    ):
        """With a user's token, each endpoint given another tenant's ids answers 404."""
        for method, path, headers, body in foreign_requests(world):
            response = await client.request(
                method, path, json=body, headers={**world.me.headers, **headers}
            )
            assert response.status_code == 404, (method, path, headers, response.text)
            assert world.theirs not in response.text.replace(path, "")

    async def test_the_walk_covers_every_endpoint_with_an_id(
        self, client: httpx.AsyncClient, world: World
    ):
        """Every (method, path-with-id) of the OpenAPI document appears in the walk."""
        templates = await _templates_with_ids(client)
        walked = {(m, _template_of(p, templates, m)) for m, p, _, _ in foreign_requests(world)}
        # The instance admin's endpoints span every workspace: no tenant reaches them
        # (403 to every non-admin, tests/api/test_admin.py).
        missing = {
            t for t in templates if t not in walked and not t[1].startswith("/api/v1/admin/")
        } - {
            ("GET", "/api/v1/auth/oauth/{provider}"),
        }
        assert missing == set()

    async def test_their_resources_are_untouched(self, client: httpx.AsyncClient, world: World):
        """After the walk, their workspace, member and key are as they were."""
        for method, path, headers, body in foreign_requests(world):
            await client.request(method, path, json=body, headers={**world.me.headers, **headers})
        workspace = await client.get(
            f"/api/v1/workspaces/{world.theirs}", headers=world.them.headers
        )
        assert workspace.json()["name"] == "Theirs"
        keys = await client.get("/api/v1/api-keys", headers=world.them.in_workspace(world.theirs))
        assert keys.json()["data"][0]["revoked_at"] is None
        members = await client.get(
            f"/api/v1/workspaces/{world.theirs}/members", headers=world.them.headers
        )
        assert {m["role"] for m in members.json()["data"]} == {"owner", "member"}

    async def test_an_api_key_reaches_no_other_workspace(
        self, client: httpx.AsyncClient, world: World
    ):
        """The same walk with my admin-scoped API key: 404 every time."""
        key = (
            await api_key(
                client,
                world.me,
                [
                    "admin",
                    "workflows:read",
                    "workflows:write",
                    "credentials:read",
                    "credentials:write",
                    "executions:read",
                    "executions:write",
                ],
                world.mine,
            )
        )["key"]
        for method, path, headers, body in foreign_requests(world):
            response = await client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {key}", **headers}
            )
            assert response.status_code == 404, (method, path, headers, response.text)


def own_requests(w: World) -> list[tuple[str, str, object]]:
    """Endpoints of my own workspace that need more than `workflows:read`."""
    member = f"/api/v1/workspaces/{w.mine}/members/{w.my_member}"
    return [
        ("PUT", f"/api/v1/workspaces/{w.mine}", {"name": "renamed"}),
        ("DELETE", f"/api/v1/workspaces/{w.mine}", None),
        ("GET", f"/api/v1/workspaces/{w.mine}/members", None),
        ("POST", f"/api/v1/workspaces/{w.mine}/members", {"email": "x@example.com"}),
        ("PUT", member, {"role": "admin"}),
        ("DELETE", member, None),
        ("DELETE", f"/api/v1/api-keys/{w.my_key}", None),
        ("GET", "/api/v1/api-keys", None),
        ("POST", "/api/v1/api-keys", {"name": "x", "scopes": ["workflows:read"]}),
        ("GET", "/api/v1/audit-logs", None),
    ]


class TestScopes:
    async def test_a_key_without_the_scope_is_403_on_every_such_endpoint(
        self, client: httpx.AsyncClient, world: World
    ):
        """An owner's `workflows:read` key: 403 insufficient_scope, nothing changes."""
        key = (await api_key(client, world.me, ["workflows:read"], world.mine))["key"]
        headers = {"Authorization": f"Bearer {key}"}
        for method, path, body in own_requests(world):
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["code"] == "insufficient_scope", (method, path)
        still = await client.get(f"/api/v1/workspaces/{world.mine}", headers=headers)
        assert still.status_code == 200
        assert still.json()["name"] == "Mine"

    async def test_the_scope_walk_covers_every_endpoint_with_an_id_of_mine(
        self, client: httpx.AsyncClient, world: World
    ):
        """Every id endpoint is either in the scope walk or readable with any key."""
        templates = await _templates_with_ids(client)
        walked = {(m, _template_of(p, templates, m)) for m, p, _ in own_requests(world)}
        readable_by_any_key = {
            ("GET", "/api/v1/workspaces/{workspace_id}"),
            ("GET", "/api/v1/users/{user_id}"),
            ("GET", "/api/v1/auth/oauth/{provider}"),
        }
        no_key_at_all = {t for t in templates if t[1].startswith("/api/v1/admin/")}
        assert templates - walked - readable_by_any_key - no_key_at_all == set()

    async def test_the_admin_scope_opens_those_endpoints(
        self, client: httpx.AsyncClient, world: World
    ):
        """With `admin`, reading members and the audit log works."""
        key = (await api_key(client, world.me, ["admin"], world.mine))["key"]
        headers = {"Authorization": f"Bearer {key}"}
        members = await client.get(f"/api/v1/workspaces/{world.mine}/members", headers=headers)
        audit = await client.get("/api/v1/audit-logs", headers=headers)
        assert members.status_code == audit.status_code == 200
