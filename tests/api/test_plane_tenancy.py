"""Isolation of the execution plane: another workspace's workflows, versions, executions,
schedules and variables are 404 on every endpoint that takes their id, never 403 and never
their data.

The walk is checked against the OpenAPI document, so a plane endpoint added later with an id
in its path fails here until it is added to the walk (credentials have their own walk in
tests/api/test_credentials.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from tests.api._plane import PlaneApi, failing_doc, manual_doc, plane_api, waiting_doc
from tests.api._support import Account, api_key

__all__ = ["plane_api"]  # the fixture, imported for pytest

ID_IN_PATH = re.compile(r"\{[a-z_]*(id|version)\}")
PLANE_PREFIXES = (
    "/api/v1/workflows", "/api/v1/executions", "/api/v1/variables", "/api/v1/schedules",
)  # fmt: skip
THEIR_NAME = "Their private flow"
THEIR_VALUE = "their-variable-value-9d2e"
HOURLY = {
    "name": "Their hourly flow",
    "nodes": [
        {"id": "tick", "type": "schedule", "parameters": {"interval_s": 3600}},
        {"id": "mark", "type": "set", "parameters": {"fields": {"ticked": True}}},
    ],
    "connections": [{"from": "tick", "to": "mark"}],
}


@dataclass
class World:
    """Two tenants: `me` with nothing of interest, `them` with one of everything."""

    me: Account
    them: Account
    workflow: str
    failed: str
    waiting: str
    variable: str
    timed: str
    schedule: str


async def build_world(plane: PlaneApi) -> World:
    me, them = await plane.user(), await plane.user()
    flow = await plane.workflow(them, {**failing_doc(), "name": THEIR_NAME})
    failed = await plane.run(them, flow["id"], input={})
    pausing = await plane.workflow(them, waiting_doc("Their waiting flow"))
    waiting = await plane.execute(them, pausing["id"], input={})
    await plane.execution(them, waiting["id"], "waiting")
    variable = await plane.client.post(
        "/api/v1/variables", json={"key": "their_key", "value": THEIR_VALUE},
        headers=them.headers,
    )  # fmt: skip
    assert variable.status_code == 201, variable.text
    timed = await plane.workflow(them, HOURLY, activate=True)
    schedules = await plane.client.get(
        "/api/v1/schedules", params={"workflow_id": timed["id"]}, headers=them.headers
    )
    (schedule,) = schedules.json()["data"]
    return World(
        me, them, flow["id"], failed["id"], waiting["id"], variable.json()["id"], timed["id"],
        schedule["id"],
    )  # fmt: skip


def foreign_requests(w: World) -> list[tuple[str, str, dict[str, str], object]]:
    """(method, path, extra headers, body): my credentials, their ids or workspace."""
    flow = f"/api/v1/workflows/{w.workflow}"
    failed = f"/api/v1/executions/{w.failed}"
    waiting = f"/api/v1/executions/{w.waiting}"
    variable = f"/api/v1/variables/{w.variable}"
    schedule = f"/api/v1/schedules/{w.schedule}"
    in_theirs = {"X-Workspace-ID": w.them.workspace_id}
    return [
        ("GET", flow, {}, None),
        ("PUT", flow, {}, {"name": "pwned", "nodes": manual_doc()["nodes"]}),
        ("DELETE", flow, {}, None),
        ("POST", f"{flow}/clone", {}, {"name": "stolen"}),
        ("POST", f"{flow}/activate", {}, None),
        ("POST", f"{flow}/deactivate", {}, None),
        ("GET", f"{flow}/versions", {}, None),
        ("GET", f"{flow}/versions/1", {}, None),
        ("GET", f"{flow}/export", {}, None),
        ("POST", f"{flow}/test-webhook", {}, None),
        ("POST", f"{flow}/webhooks/hook/rotate", {}, None),
        ("POST", f"{flow}/execute", {}, {"input": {}}),
        ("POST", f"{flow}/execute", {}, {"input": {}, "wait": True}),
        ("GET", failed, {}, None),
        ("GET", f"{failed}/logs", {}, None),
        ("GET", f"{failed}/output", {}, None),
        ("GET", f"{failed}/nodes/prep/output", {}, None),
        ("GET", f"{failed}/events", {}, None),
        ("POST", f"{waiting}/cancel", {}, None),
        ("POST", f"{failed}/retry", {}, {"from_failed": True}),
        ("POST", f"{failed}/retry", {}, {"from_failed": False}),
        ("GET", variable, {}, None),
        ("PUT", variable, {}, {"key": "their_key", "value": "pwned"}),
        ("DELETE", variable, {}, None),
        ("GET", schedule, {}, None),
        ("PUT", schedule, {}, {"interval_s": 1}),
        ("POST", f"{schedule}/pause", {}, None),
        ("POST", f"{schedule}/resume", {}, None),
        ("DELETE", schedule, {}, None),
        (
            "POST",
            "/api/v1/schedules",
            {},
            {"workflow_id": w.timed, "node_id": "tick", "interval_s": 1},
        ),
        ("GET", "/api/v1/schedules", in_theirs, None),
        ("GET", "/api/v1/workflows", in_theirs, None),
        ("POST", "/api/v1/workflows", in_theirs, manual_doc()),
        ("POST", "/api/v1/workflows/import", in_theirs, manual_doc()),
        ("GET", "/api/v1/executions", in_theirs, None),
        ("GET", "/api/v1/variables", in_theirs, None),
        ("POST", "/api/v1/variables", in_theirs, {"key": "planted", "value": "x"}),
        ("GET", flow, in_theirs, None),
    ]


async def walk(client: httpx.AsyncClient, w: World, authorization: dict[str, str]) -> None:
    for method, path, headers, body in foreign_requests(w):
        response = await client.request(
            method, path, json=body, headers={**authorization, **headers}
        )
        where = (method, path, headers)
        assert response.status_code == 404, (*where, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), where
        text = response.text.replace(path, "")
        for secret in (THEIR_NAME, THEIR_VALUE, w.them.workspace_id, w.them.user_id):
            assert secret not in text, (*where, response.text)


async def _plane_templates(client: httpx.AsyncClient) -> set[tuple[str, str]]:
    document = (await client.get("/openapi.json")).json()
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith(PLANE_PREFIXES) and ID_IN_PATH.search(path)
        for method in operations
    }


def _template_of(path: str, templates: set[tuple[str, str]], method: str) -> str | None:
    for known_method, template in templates:
        pattern = "^" + ID_IN_PATH.sub("[^/]+", template) + "$"
        if known_method == method and re.match(pattern, path):
            return template
    return None


class TestPlaneTenancy:
    async def test_every_plane_id_of_another_workspace_is_404(self, plane_api: PlaneApi):
        """With my token, each plane endpoint given their ids (or their workspace) is 404."""
        world = await build_world(plane_api)
        await walk(plane_api.client, world, world.me.headers)

    async def test_an_api_key_with_every_scope_reaches_no_other_workspace(
        self, plane_api: PlaneApi
    ):
        """The same walk with my API key holding every scope: 404 every time."""
        world = await build_world(plane_api)
        scopes = [
            "workflows:read", "workflows:write", "executions:read", "executions:write",
            "credentials:read", "credentials:write", "admin",
        ]  # fmt: skip
        key = (await api_key(plane_api.client, world.me, scopes))["key"]
        await walk(plane_api.client, world, {"Authorization": f"Bearer {key}"})

    async def test_their_resources_are_untouched_by_the_walk(self, plane_api: PlaneApi):
        """After the walk their resources are as they were and nothing new exists anywhere."""
        world = await build_world(plane_api)
        client, them = plane_api.client, world.them.headers
        before = (await client.get("/api/v1/executions", headers=them)).json()["data"]
        await walk(client, world, world.me.headers)
        flow = (await client.get(f"/api/v1/workflows/{world.workflow}", headers=them)).json()
        assert (flow["name"], flow["version"], flow["status"]) == (THEIR_NAME, 1, "draft")
        workflows = (await client.get("/api/v1/workflows", headers=them)).json()["data"]
        assert len(workflows) == 3
        after = (await client.get("/api/v1/executions", headers=them)).json()["data"]
        assert [e["id"] for e in after] == [e["id"] for e in before]
        waiting = await client.get(f"/api/v1/executions/{world.waiting}", headers=them)
        assert waiting.json()["status"] == "waiting"
        variable = await client.get(f"/api/v1/variables/{world.variable}", headers=them)
        assert variable.json()["value"] == THEIR_VALUE
        variables = (await client.get("/api/v1/variables", headers=them)).json()["data"]
        assert [v["key"] for v in variables] == ["their_key"]
        schedule = await client.get(f"/api/v1/schedules/{world.schedule}", headers=them)
        assert (schedule.json()["status"], schedule.json()["interval_s"]) == ("active", 3600)
        mine = world.me.headers
        assert (await client.get("/api/v1/workflows", headers=mine)).json()["data"] == []
        assert (await client.get("/api/v1/executions", headers=mine)).json()["data"] == []

    async def test_the_walk_covers_every_plane_endpoint_with_an_id(self, plane_api: PlaneApi):
        """Every plane (method, path-with-id) of the OpenAPI document appears in the walk."""
        world = World(*(await plane_api.user(),) * 2, "w", "f", "x", "v", "t", "s")
        templates = await _plane_templates(plane_api.client)
        assert templates, "the plane's routes are not in the OpenAPI document"
        walked = {(m, _template_of(p, templates, m)) for m, p, _, _ in foreign_requests(world)}
        assert templates - walked == set()
