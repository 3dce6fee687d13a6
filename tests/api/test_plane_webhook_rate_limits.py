"""Webhook rate limits (issue 14, item 11): webhook triggers are not counted against the
API's per-address limit; each endpoint has its own limit, the node's `rate_limit` or
`LINKFLOW_WEBHOOK_RATE_LIMIT` (unset by default)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api._plane import PlaneApi, assert_problem, running_plane, webhook_doc
from tests.api._support import api_settings

PER_IP = 12
"""The API's per-address limit in these tests: well below the 40 calls of a burst."""
BURST = 40


@pytest.fixture(scope="module")
async def limited_api(
    db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PlaneApi]:
    """The API and its plane with a low per-address limit (`PER_IP` a minute)."""
    data_dir: Path = tmp_path_factory.mktemp("limited")
    settings = api_settings(data_dir, db_url, rate_limit_per_ip=f"{PER_IP}/minute")
    async with running_plane(settings) as api:
        yield api


async def burst(client: httpx.AsyncClient, url: str, count: int = BURST) -> list[httpx.Response]:
    return list(await asyncio.gather(*(client.post(url, json={"n": n}) for n in range(count))))


async def test_webhooks_have_their_own_limit_not_the_apis_per_address_one(
    limited_api: PlaneApi,
) -> None:
    """40 calls at once to a webhook without `rate_limit` all pass (the API allows the
    address 12 a minute); one with `rate_limit: "10/minute"` answers its 11th call and on
    with 429 problem+json `webhook_rate_limited` and a Retry-After; an unknown endpoint is
    still counted against the address; the API itself still is."""
    client = limited_api.client
    account = await limited_api.user()
    free = await limited_api.workflow(account, webhook_doc("Free"), activate=True)
    limited = await limited_api.workflow(
        account, webhook_doc("Limited", rate_limit="10/minute"), activate=True
    )
    answers = await burst(client, free["webhooks"][0]["url"])
    assert [a.status_code for a in answers] == [202] * BURST, answers[-1].text

    answers = await burst(client, limited["webhooks"][0]["url"], 15)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202] * 10 + [429] * 5
    refused = next(a for a in answers if a.status_code == 429)
    assert_problem(refused, 429, "webhook_rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    # Its limit is its own: the unlimited webhook still answers.
    assert (await client.post(free["webhooks"][0]["url"], json={})).status_code == 202

    unknown = [await client.post(f"/webhooks/{uuid.uuid4()}") for _ in range(PER_IP + 1)]
    assert unknown[0].status_code == 404
    assert_problem(unknown[-1], 429, "rate_limited")
    assert_problem(await client.get("/api/v1/workflows", headers=account.headers), 429,
                   "rate_limited")  # fmt: skip


async def test_a_bad_rate_limit_is_refused_when_the_workflow_is_saved(
    limited_api: PlaneApi,
) -> None:
    """`rate_limit: "fast"` is a 422 naming the parameter, never a failing webhook."""
    await limited_api.container.limiter.storage.reset()
    account = await limited_api.user()
    response = await limited_api.client.post(
        "/api/v1/workflows", json=webhook_doc("Bad", rate_limit="fast"), headers=account.headers
    )
    body = assert_problem(response, 422)
    assert "rate_limit" in response.text, body


class TestWebhookLimits:
    async def test_the_default_applies_unless_the_node_says_otherwise(self) -> None:
        """No `rate_limit`: the server default; `unlimited` lifts it; a node's own wins.
        Counting is per endpoint, and runs even with the API's limits disabled."""
        from limits.aio.storage import MemoryStorage

        from linkflow.api.ratelimit import RateLimiter, WebhookLimits
        from linkflow.services.errors import RateLimited

        limiter = RateLimiter(MemoryStorage(), enabled=False, per_ip="1/minute",
                              per_principal="1/minute", auth="1/minute")  # fmt: skip
        limits = WebhookLimits(limiter, "2/minute")
        try:
            assert limits.limit_of("unlimited") is None
            assert str(limits.limit_of(None)) == "2 per 1 minute"
            assert str(limits.limit_of("5/second")) == "5 per 1 second"
            first, second = uuid.uuid4(), uuid.uuid4()
            for _ in range(2):
                await limits.check(first, None)
            with pytest.raises(RateLimited) as refused:
                await limits.check(first, None)
            assert refused.value.code == "webhook_rate_limited"
            await limits.check(second, None)  # another endpoint, another count
            for _ in range(10):
                await limits.check(first, "unlimited")
        finally:
            await limiter.close()
