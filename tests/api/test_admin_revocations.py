"""A suspension bites at once in every API process: two apps on one database and one
Redis, each caching checked credentials for a minute; a suspension made through one is
refused by the other within moments, not after the minute."""

from __future__ import annotations

from contextlib import AsyncExitStack

import httpx

from tests.api._plane import assert_problem
from tests.api._support import api_key, eventually, make_admin, register
from tests.api.conftest import ApiFactory

CACHE_TTL_S = 60.0
"""Far longer than the test: a refusal can only come from the broadcast."""
REFUSED_WITHIN_S = 2.0


async def test_a_suspension_through_one_process_is_refused_by_the_other_at_once(
    make_api: ApiFactory, redis_url: str
) -> None:
    first = await make_api(redis_url=redis_url, auth_cache_ttl_s=CACHE_TTL_S)
    second = await make_api(redis_url=redis_url, auth_cache_ttl_s=CACHE_TTL_S)
    async with AsyncExitStack() as stack:
        for api in (first, second):  # what each app's lifespan does in a served process
            await stack.enter_async_context(api.container.revocations.listening())
        admin = await register(first.client)
        await make_admin(first.container, admin.user_id)
        target = await register(first.client)
        key = (await api_key(first.client, target, ["workflows:read"]))["key"]
        for headers in (target.headers, {"Authorization": f"Bearer {key}"}):
            cached = await second.client.get("/api/v1/users/me", headers=headers)
            assert cached.status_code == 200, cached.text  # now cached in the second
        suspended = await first.client.post(
            f"/api/v1/admin/users/{target.user_id}/suspend", headers=admin.headers
        )
        assert suspended.status_code == 200, suspended.text

        async def refused() -> httpx.Response | None:
            answer = await second.client.get("/api/v1/users/me", headers=target.headers)
            return answer if answer.status_code == 401 else None

        answer = await eventually(refused, timeout_s=REFUSED_WITHIN_S, what="the refusal")
        assert_problem(answer, 401, "invalid_token")
        by_key = await second.client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {key}"}
        )
        assert_problem(by_key, 401, "invalid_token")


async def test_without_a_listener_the_other_process_would_wait_out_its_cache(
    make_api: ApiFactory, redis_url: str
) -> None:
    """The control: the same two apps without the listener keep the cached caller, which
    is what the broadcast above removes."""
    first = await make_api(redis_url=redis_url, auth_cache_ttl_s=CACHE_TTL_S)
    second = await make_api(redis_url=redis_url, auth_cache_ttl_s=CACHE_TTL_S)
    admin = await register(first.client)
    await make_admin(first.container, admin.user_id)
    target = await register(first.client)
    assert (await second.client.get("/api/v1/users/me", headers=target.headers)).is_success
    await first.client.post(f"/api/v1/admin/users/{target.user_id}/suspend", headers=admin.headers)
    stale: httpx.Response = await second.client.get("/api/v1/users/me", headers=target.headers)
    assert stale.status_code == 200
