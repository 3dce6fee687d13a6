"""The read cache of webhook endpoints and variables: one load for many callers, a
just-expired entry served while it is refreshed, nothing cached from a failed load or
from a load that a `forget` overtook."""

from __future__ import annotations

import asyncio

import pytest

from linkflow.services import _ttl_cache
from linkflow.services._ttl_cache import TTLCache


class Source:
    """A loader that counts its calls and can be held until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.value = "v1"
        self.gate: asyncio.Event | None = None
        self.fail = False
        self.started = asyncio.Event()
        """Set when a load begins."""
        self.loaded = asyncio.Event()
        """Set when a load returns; cleared by the test before the load it awaits."""

    async def load(self) -> str:
        self.calls += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("database down")
        self.loaded.set()
        return self.value


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(_ttl_cache.time, "monotonic", lambda: now[0])
    return now


async def test_concurrent_misses_share_one_load(clock: list[float]) -> None:
    cache: TTLCache[str, str] = TTLCache(1.0)
    source = Source()
    source.gate = asyncio.Event()
    waiting = [asyncio.create_task(cache.get("k", source.load)) for _ in range(20)]
    await source.started.wait()  # every task has asked by now: they ran first, in order
    source.gate.set()
    assert await asyncio.gather(*waiting) == ["v1"] * 20
    assert source.calls == 1


async def test_a_just_expired_entry_is_served_while_it_refreshes(clock: list[float]) -> None:
    cache: TTLCache[str, str] = TTLCache(1.0)
    source = Source()
    assert await cache.get("k", source.load) == "v1"
    source.value = "v2"
    clock[0] += 1.5  # expired, within the stale window
    source.loaded.clear()
    assert await cache.get("k", source.load) == "v1"  # no wait for the database
    await source.loaded.wait()  # the refresh behind
    assert await cache.get("k", source.load) == "v2"
    assert source.calls == 2


async def test_an_old_entry_is_loaded_again_before_answering(clock: list[float]) -> None:
    cache: TTLCache[str, str] = TTLCache(1.0)
    source = Source()
    await cache.get("k", source.load)
    source.value = "v2"
    clock[0] += 5  # far past the stale window: a deactivated webhook must not answer
    assert await cache.get("k", source.load) == "v2"


async def test_a_failed_load_fails_its_callers_and_caches_nothing(clock: list[float]) -> None:
    cache: TTLCache[str, str] = TTLCache(1.0)
    source = Source()
    source.fail = True
    with pytest.raises(RuntimeError, match="database down"):
        await cache.get("k", source.load)
    source.fail = False
    assert await cache.get("k", source.load) == "v1"
    assert source.calls == 2


async def test_forget_during_a_load_keeps_its_result_out(clock: list[float]) -> None:
    """A change made while a load was reading must not be hidden by that load's result."""
    cache: TTLCache[str, str] = TTLCache(1.0)
    source = Source()
    source.gate = asyncio.Event()
    loading = asyncio.create_task(cache.get("k", source.load))
    await source.started.wait()
    cache.forget("k")
    source.gate.set()
    assert await loading == "v1"
    source.gate = None
    source.value = "v2"
    assert await cache.get("k", source.load) == "v2"


async def test_a_burst_on_a_just_expired_entry_starts_one_refresh(clock: list[float]) -> None:
    """Fifty callers in the same moment: all answered from the entry, one refresh."""
    cache: TTLCache[str, str] = TTLCache(1.0)
    source = Source()
    await cache.get("k", source.load)
    clock[0] += 1.5
    source.loaded.clear()
    answers = await asyncio.gather(*[cache.get("k", source.load) for _ in range(50)])
    await source.loaded.wait()
    assert answers == ["v1"] * 50
    assert source.calls == 2
