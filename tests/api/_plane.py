"""Fixtures of the execution plane's API tests: the app of `linkflow serve` in-process.

`plane_api` (module scope, on `db_url`: SQLite and PostgreSQL) is the API with
the execution plane mounted and running: the runtime's writer, worker and
scheduler tasks run in the test's event loop, and the app is driven through
`httpx.ASGITransport`. Test modules load it with
``pytest_plugins = ["tests.api._plane"]``.

Tests share the module's app and database, so each one registers its own
accounts (a fresh workspace) rather than assume an empty database.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from linkflow.api import create_app
from linkflow.api.container import Container
from linkflow.config import Settings
from linkflow.wiring import Runtime, build_container, build_runtime
from tests.api._support import Account, api_settings, eventually, register

FINISHED = ("completed", "failed", "cancelled", "timeout")
DEADLINE_S = 15.0
"""Long enough for a loaded 2-core machine; an execution here takes milliseconds."""


def manual_doc(name: str = "Manual flow", **fields: Any) -> dict[str, Any]:
    """A manual trigger followed by a set node adding `fields` (default `{"done": true}`)."""
    return {
        "name": name,
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "mark", "type": "set", "parameters": {"fields": fields or {"done": True}}},
        ],
        "connections": [{"from": "start", "to": "mark"}],
    }


def failing_doc(name: str = "Failing flow") -> dict[str, Any]:
    """A manual trigger, a set node that completes, then a node that always fails."""
    return {
        "name": name,
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "prep", "type": "set", "parameters": {"fields": {"prepared": True}}},
            {"id": "boom", "type": "stop_and_error", "parameters": {"message": "boom"}},
        ],
        "connections": [{"from": "start", "to": "prep"}, {"from": "prep", "to": "boom"}],
    }


def waiting_doc(name: str = "Waiting flow") -> dict[str, Any]:
    """A manual trigger and a wait node that waits for its resume webhook."""
    return {
        "name": name,
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "pause", "type": "wait", "parameters": {"resume": "webhook"}},
        ],
        "connections": [{"from": "start", "to": "pause"}],
    }


def webhook_doc(name: str = "Hook flow", *, after: list[dict[str, Any]] | None = None,
                **params: Any) -> dict[str, Any]:  # fmt: skip
    """A webhook trigger with `params`, then the `after` nodes in a chain (default: a set node
    answering `{"seen": <body>}`)."""
    chain = after if after is not None else [
        {"id": "answer", "type": "set",
         "parameters": {"fields": {"seen": "{{ json.body }}"}, "keep_only_set": True}},
    ]  # fmt: skip
    nodes = [{"id": "hook", "type": "webhook", "parameters": params}, *chain]
    ids = [node["id"] for node in nodes]
    return {
        "name": name,
        "nodes": nodes,
        "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
    }


@dataclass
class PlaneApi:
    """The running app: its client, container, runtime and settings, and helpers."""

    client: httpx.AsyncClient
    container: Container
    runtime: Runtime
    settings: Settings

    async def user(self) -> Account:
        """A newly registered account with its own personal workspace."""
        return await register(self.client)

    async def workflow(
        self, account: Account, doc: dict[str, Any], *, activate: bool = False,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Create `doc` (and activate it); the workflow resource."""
        headers = headers or account.headers
        created = await self.client.post("/api/v1/workflows", json=doc, headers=headers)
        assert created.status_code == 201, created.text
        body: dict[str, Any] = created.json()
        if activate:
            activated = await self.client.post(
                f"/api/v1/workflows/{body['id']}/activate", headers=headers
            )
            assert activated.status_code == 200, activated.text
            body = activated.json()
        return body

    async def execute(
        self, account: Account, workflow_id: str, *, headers: dict[str, str] | None = None,
        **body: Any,
    ) -> dict[str, Any]:  # fmt: skip
        """`POST /workflows/{id}/execute` with `body`; 202 expected, the queued answer."""
        response = await self.client.post(
            f"/api/v1/workflows/{workflow_id}/execute", json=body,
            headers=headers or account.headers,
        )  # fmt: skip
        assert response.status_code == 202, response.text
        queued: dict[str, Any] = response.json()
        return queued

    async def execution(
        self, account: Account, execution_id: str, *statuses: str,
        headers: dict[str, str] | None = None, timeout_s: float = DEADLINE_S,
    ) -> dict[str, Any]:  # fmt: skip
        """Poll `GET /executions/{id}` until its status is one of `statuses` (default: any
        finished one); the execution."""
        wanted = statuses or FINISHED

        async def reached() -> dict[str, Any] | None:
            response = await self.client.get(
                f"/api/v1/executions/{execution_id}", headers=headers or account.headers
            )
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body if body["status"] in wanted else None

        return await eventually(
            reached, timeout_s=timeout_s, what=f"execution {execution_id} to be one of {wanted}"
        )

    async def listed(self, account: Account, path: str, **params: Any) -> list[Any]:
        """Every item of the list at `path`, following `next_cursor` page by page."""
        items: list[Any] = []
        cursor: str | None = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            response = await self.client.get(path, params=query, headers=account.headers)
            assert response.status_code == 200, response.text
            body = response.json()
            assert set(body) == {"data", "next_cursor"}, body
            items.extend(body["data"])
            cursor = body["next_cursor"]
            if cursor is None:
                return items

    async def run(self, account: Account, workflow_id: str, **body: Any) -> dict[str, Any]:
        """Execute and wait for the end; the finished execution."""
        queued = await self.execute(account, workflow_id, **body)
        return await self.execution(account, queued["id"])


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> Any:
    """The response is a problem+json of `status` (and `code`); its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert {"type", "title", "status", "detail", "code", "errors"} <= body.keys()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture(scope="module")
async def plane_api(
    db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PlaneApi]:
    """The API with the execution plane, running (writer, worker, scheduler) on `db_url`."""
    data_dir: Path = tmp_path_factory.mktemp("plane")
    async with running_plane(api_settings(data_dir, db_url)) as api:
        yield api


@asynccontextmanager
async def running_plane(settings: Settings) -> AsyncIterator[PlaneApi]:
    """The API with its execution plane running on `settings`, as `serve` builds it."""
    container = build_container(settings)
    runtime = build_runtime(settings, container.database, concurrency=8)
    await runtime.start()
    app = create_app(container, plane=runtime.plane)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")
    try:
        yield PlaneApi(client, container, runtime, settings)
    finally:
        await client.aclose()
        await runtime.stop()
        await container.aclose()
