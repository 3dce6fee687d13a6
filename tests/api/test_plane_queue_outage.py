"""The API while its job queue (Redis) is away: what needs the queue is refused with 503
`queue_unavailable` and `Retry-After` before anything is stored, reads go on, and what was
stored before the outage was known starts once Redis is back (`services.executions`).

The plane runs as `linkflow serve` builds it, on a redis-server of the test's own that it
stops and starts again on the same port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests._services import RedisServer, start_redis
from tests.api._plane import (
    PlaneApi,
    assert_problem,
    manual_doc,
    running_plane,
    waiting_doc,
    webhook_doc,
)
from tests.api._support import api_settings, eventually

pytestmark = pytest.mark.redis

RECOVERY_DEADLINE_S = 30.0
"""Recovery runs every half lease (1 s here) once the scheduler finds Redis again."""


@pytest.fixture
async def outage(tmp_path: Path, sqlite_url: str) -> AsyncIterator[tuple[PlaneApi, RedisServer]]:
    server = start_redis()
    settings = api_settings(tmp_path, sqlite_url, redis_url=server.url(), lease_ttl_s=2.0)
    try:
        async with running_plane(settings) as api:
            yield api, server
        # `Runtime.stop` leaves the Redis connections to the process's end (serve's).
        for resource in (api.runtime.shared.queue, api.runtime.shared.bus):
            await resource.aclose()  # type: ignore[attr-defined]
    finally:
        server.stop()


async def test_starts_are_refused_while_redis_is_away_and_reads_go_on(
    outage: tuple[PlaneApi, RedisServer],
) -> None:
    api, server = outage
    owner = await api.user()
    flow = await api.workflow(owner, manual_doc())
    hook = (await api.workflow(owner, webhook_doc(path="outage", method="POST",
                                                  response_mode="last_node"),
                               activate=True))["webhooks"][0]["url"]  # fmt: skip
    waits = await api.workflow(owner, waiting_doc())
    waiting = await api.execute(owner, waits["id"], input={})
    resume_url = (await api.execution(owner, waiting["id"], "waiting"))["resume_url"]
    done_before = await api.run(owner, flow["id"])
    server.stop()
    stored: list[str] = []

    async def refused() -> httpx.Response | None:
        answer = await api.client.post(f"/api/v1/workflows/{flow['id']}/execute", json={},
                                       headers=owner.headers)  # fmt: skip
        if answer.status_code == 202:  # this start found the outage: it is stored
            stored.append(answer.json()["id"])
            return None
        return answer

    answer = await eventually(refused, what="a start to be refused")
    assert_problem(answer, 503, "queue_unavailable")
    assert int(answer.headers["Retry-After"]) > 0
    counted = len(await api.listed(owner, "/api/v1/executions"))
    for refusal in (
        await api.client.post(hook, json={"x": 1}),
        await api.client.post(resume_url, json={"ok": True}),
        await api.client.post(f"/api/v1/workflows/{flow['id']}/execute", json={"wait": True},
                              headers=owner.headers),
    ):  # fmt: skip
        assert_problem(refusal, 503, "queue_unavailable")
        assert "Retry-After" in refusal.headers
    assert len(await api.listed(owner, "/api/v1/executions")) == counted  # nothing stored
    detail = await api.client.get(f"/api/v1/executions/{done_before['id']}",
                                  headers=owner.headers)  # fmt: skip
    assert detail.status_code == 200
    assert detail.json()["status"] == "completed"
    assert (await api.client.get(f"/api/v1/workflows/{flow['id']}", headers=owner.headers)
            ).status_code == 200  # fmt: skip

    restarted = start_redis(port=server.port)
    try:

        async def accepted() -> dict[str, str] | None:
            answer = await api.client.post(f"/api/v1/workflows/{flow['id']}/execute",
                                           json={}, headers=owner.headers)  # fmt: skip
            return answer.json() if answer.status_code == 202 else None

        later = await eventually(accepted, timeout_s=RECOVERY_DEADLINE_S, what="a start")
        resumed = await api.client.post(resume_url, json={"ok": True})
        assert resumed.status_code == 202, resumed.text
        for execution_id in [later["id"], waiting["id"], *stored]:
            done = await api.execution(owner, execution_id, timeout_s=RECOVERY_DEADLINE_S)
            assert done["status"] == "completed", done
    finally:
        restarted.stop()
