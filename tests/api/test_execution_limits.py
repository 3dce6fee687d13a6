"""Plan limits where executions start, through the HTTP API and through webhooks, on
`linkflow serve`'s app (SQLite and PostgreSQL): `executions_per_month` and
`max_concurrent_executions` refuse exactly at their boundary with 429 `plan_limit`
(naming the limit, its value and the usage, with `Retry-After`), and of twenty requests
racing for the last slot exactly one passes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from linkflow.services.plan_limits import CONCURRENCY_RETRY_AFTER_S, next_month
from tests._http_server import Recorded, Reply, TestServer, serve
from tests.api._plane import PlaneApi, assert_problem, manual_doc, running_plane, webhook_doc
from tests.api._support import Account, api_settings, make_admin

RACERS = 20


@pytest.fixture(scope="module")
def gate() -> Iterator[tuple[TestServer, threading.Event]]:
    """A loopback server whose `/slow` answers once the event is set: what keeps an
    execution running for as long as a test needs."""
    opened = threading.Event()

    def slow(_: Recorded) -> Reply:
        opened.wait(30)
        return Reply.json({"ok": True})

    with serve({"/slow": slow}) as server:
        yield server, opened


@pytest.fixture(scope="module")
async def api(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PlaneApi]:
    data_dir: Path = tmp_path_factory.mktemp("limits")
    settings = api_settings(data_dir, db_url, default_plan="free", http_allow_private=True)
    async with running_plane(settings) as running:
        yield running


async def limited(api: PlaneApi, **limits: int) -> Account:
    """A new account whose workspace an instance admin gave `limits`."""
    admin = await api.user()
    await make_admin(api.container, admin.user_id)
    owner = await api.user()
    answer = await api.client.put(
        f"/api/v1/admin/workspaces/{owner.workspace_id}/limits",
        json={"limits": limits}, headers=admin.headers,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return owner


async def usage(api: PlaneApi, owner: Account) -> dict[str, Any]:
    answer = await api.client.get("/api/v1/billing/usage", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def seconds_to_month_end() -> float:
    now = datetime.now(UTC)
    return (next_month(now) - now).total_seconds()


def assert_refused(answer: httpx.Response, limit: str, value: int, used: int) -> None:
    body = assert_problem(answer, 429, "plan_limit")
    assert (body["limit"], body["value"], body["usage"]) == (limit, value, used), body
    retry_after = int(answer.headers["retry-after"])
    if limit == "executions_per_month":
        assert abs(retry_after - seconds_to_month_end()) <= 5
    else:
        assert retry_after == CONCURRENCY_RETRY_AFTER_S


async def test_the_third_execution_of_three_passes_and_the_fourth_is_refused(
    api: PlaneApi,
) -> None:
    owner = await limited(api, executions_per_month=3)
    workflow = await api.workflow(owner, manual_doc())
    for _ in range(3):
        await api.run(owner, workflow["id"])
    refused = await api.client.post(f"/api/v1/workflows/{workflow['id']}/execute", json={},
                                    headers=owner.headers)  # fmt: skip
    assert_refused(refused, "executions_per_month", 3, 3)
    assert (await usage(api, owner))["executions"] == {"used": 3, "limit": 3}
    assert len(await api.listed(owner, "/api/v1/executions")) == 3


async def test_twenty_executes_racing_for_the_last_of_the_month_let_one_pass(
    api: PlaneApi,
) -> None:
    owner = await limited(api, executions_per_month=3)
    workflow = await api.workflow(owner, manual_doc())
    for _ in range(2):
        await api.run(owner, workflow["id"])
    answers = await asyncio.gather(*(
        api.client.post(f"/api/v1/workflows/{workflow['id']}/execute", json={},
                        headers=owner.headers)
        for _ in range(RACERS)
    ))  # fmt: skip
    assert sorted(a.status_code for a in answers) == [202] + [429] * (RACERS - 1)
    for answer in answers:
        if answer.status_code == 429:
            assert_refused(answer, "executions_per_month", 3, 3)
    assert (await usage(api, owner))["executions"] == {"used": 3, "limit": 3}
    assert len(await api.listed(owner, "/api/v1/executions")) == 3


async def test_twenty_webhook_calls_racing_for_the_last_of_the_month_let_one_pass(
    api: PlaneApi,
) -> None:
    owner = await limited(api, executions_per_month=1)
    hook = await api.workflow(owner, webhook_doc(path="last"), activate=True)
    url = hook["webhooks"][0]["url"]
    answers = await asyncio.gather(*(api.client.post(url, json={"n": n}) for n in range(RACERS)))
    assert sorted(a.status_code for a in answers) == [202] + [429] * (RACERS - 1)
    for answer in answers:
        if answer.status_code == 429:
            assert_refused(answer, "executions_per_month", 1, 1)
    assert (await usage(api, owner))["executions"] == {"used": 1, "limit": 1}


def slow_doc(server: TestServer) -> dict[str, Any]:
    return webhook_doc("Slow", path="slow", after=[
        {"id": "call", "type": "http_request",
         "parameters": {"method": "GET", "url": server.url("/slow"), "timeout_s": 60}},
    ])  # fmt: skip


async def test_concurrent_executions_refuse_at_the_limit_and_free_when_one_ends(
    api: PlaneApi, gate: tuple[TestServer, threading.Event]
) -> None:
    """Two running of two: the webhook's next call is 429 with a short Retry-After (and
    so is an execute through the API); twenty racing for a freed slot: one passes."""
    server, opened = gate
    opened.clear()
    owner = await limited(api, max_concurrent_executions=2)
    hook = await api.workflow(owner, slow_doc(server), activate=True)
    url = hook["webhooks"][0]["url"]
    try:
        first, second = [await api.client.post(url, json={}) for _ in range(2)]
        assert (first.status_code, second.status_code) == (202, 202), first.text
        await api.execution(owner, first.json()["execution_id"], "running")
        refused = await api.client.post(url, json={})
        assert_refused(refused, "max_concurrent_executions", 2, 2)
        manual = await api.workflow(owner, manual_doc())
        refused = await api.client.post(f"/api/v1/workflows/{manual['id']}/execute", json={},
                                        headers=owner.headers)  # fmt: skip
        assert_refused(refused, "max_concurrent_executions", 2, 2)
    finally:
        opened.set()
    for answer in (first, second):
        await api.execution(owner, answer.json()["execution_id"], "completed")

    opened.clear()
    try:
        holding = await api.client.post(url, json={})
        assert holding.status_code == 202, holding.text
        answers = await asyncio.gather(*(api.client.post(url, json={}) for _ in range(RACERS)))
        assert sorted(a.status_code for a in answers) == [202] + [429] * (RACERS - 1)
        for answer in answers:
            if answer.status_code == 429:
                assert_refused(answer, "max_concurrent_executions", 2, 2)
    finally:
        opened.set()
    assert (await usage(api, owner))["executions"]["used"] == 4
