"""A process gives memory back once it goes idle after work, never while it works."""

from __future__ import annotations

import asyncio
import gc

from linkflow.processes._memory import give_back, give_back_when_idle


class Looks:
    """The watcher's pauses, let go one at a time by the test: each `look()` lets the
    watcher take one more look at the counter and waits until it has."""

    def __init__(self) -> None:
        self.gate = asyncio.Queue[None]()
        self.taken = asyncio.Queue[None]()

    async def pause(self) -> None:
        self.taken.put_nowait(None)
        await self.gate.get()

    async def look(self) -> None:
        self.gate.put_nowait(None)
        await asyncio.wait_for(self.taken.get(), timeout=10)


async def test_memory_is_given_back_once_per_busy_spell_and_never_under_load() -> None:
    work = [0]
    released: list[int] = []
    looks = Looks()
    task = asyncio.create_task(give_back_when_idle(
        lambda: work[0], release=lambda: released.append(work[0]), pause=looks.pause,
    ))  # fmt: skip
    try:
        await asyncio.wait_for(looks.taken.get(), timeout=10)  # the first pause
        for _ in range(5):  # busy: the counter moved before every look
            work[0] += 1
            await looks.look()
        assert released == []
        await looks.look()  # a look with nothing new: idle
        assert released == [5]
        for _ in range(3):  # idle and staying idle: nothing more to give back
            await looks.look()
        assert released == [5]
        work[0] += 1  # a second busy spell, then idle again
        await looks.look()
        await looks.look()
        assert released == [5, 6]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_giving_back_collects_unreachable_cycles() -> None:
    class Node:
        other: object = None

    gc.disable()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        del a, b
        assert any(isinstance(o, Node) for o in gc.get_objects())
        give_back()
        assert not any(isinstance(o, Node) for o in gc.get_objects())
    finally:
        gc.enable()
