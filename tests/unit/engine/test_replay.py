"""Durability: an execution stopped after any number of events resumes from its history
without re-running completed nodes, and ends exactly as an uninterrupted run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest

from linkflow.engine import Event, History, InMemoryHistory, NonDeterminismError, RunResult
from tests.unit.engine._nodes import Calls
from tests.unit.engine._support import document, edge, node, run


class Crash(Exception):
    """The process 'died' while appending an event."""


class CrashingHistory:
    """Passes appends to `inner` until `limit` events are stored, then dies."""

    def __init__(self, inner: History, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.stored = 0

    async def read(self) -> Sequence[Event]:
        return await self.inner.read()

    async def append(self, event: Event) -> None:
        if self.stored >= self.limit:
            raise Crash
        await self.inner.append(event)
        await self.inner.flush()
        self.stored += 1

    async def flush(self) -> None:
        await self.inner.flush()


def durable_workflow() -> dict[str, Any]:
    """Branches, a merge, a loop and lineage: every kind of step the executor takes."""
    return document(
        [
            node("start", "manual"),
            node("split", "if", parameters={"condition": "{{ json.n % 2 == 0 }}"}),
            node("even", "test_count", parameters={"tag": "even {{ json.n }}"}),
            node("odd", "test_count", parameters={"tag": "odd"}),
            node("join", "merge", parameters={"mode": "append"}),
            node("batches", "loop", parameters={"batch_size": 2}),
            node("work", "set", parameters={"fields": {"origin": "{{ node.start.item.n }}"}}),
            node("none", "filter", parameters={"condition": "{{ false }}"}),
            node("never", "test_count"),
            node("end", "test_count"),
        ],
        [
            edge("start", "split"),
            edge("split", "even", "true"),
            edge("split", "odd", "false"),
            edge("even", "join", input_=0),
            edge("odd", "join", input_=1),
            edge("join", "batches"),
            edge("batches", "work", "loop"),
            edge("work", "batches"),
            edge("batches", "none", "done"),
            edge("none", "never"),
            edge("batches", "end", "done"),
        ],
    )


INPUT = [{"n": n} for n in range(5)]


def outcome(result: RunResult) -> dict[str, Any]:
    state = result.state
    return {
        "status": result.status,
        "output": result.output,
        "runs": {
            run_.node_id + f"#{run_.index}": {
                k: [i.json for i in v] for k, v in run_.outputs.items()
            }
            for run_ in state.iter_runs()
        },
        "skipped": sorted(n for n in state.graph.order if result.skipped(n)),
    }


def completed_runs(events: Sequence[Event]) -> set[tuple[str, int]]:
    return {(e.node_id, e.data["run"]) for e in events if e.type == "node.completed"}


async def resume_after_crash(
    history: History, limit: int
) -> tuple[RunResult, set[tuple[str, int]]]:
    """Run until `limit` events are stored, then resume from the history with a new engine."""
    doc = durable_workflow()
    with pytest.raises(Crash):
        await run(doc, INPUT, history=CrashingHistory(history, limit))
    done_before = completed_runs(await history.read())
    calls_before = dict(Calls.counter)
    result = await run(doc, None, history=history)
    for key in done_before:
        assert Calls.counter[key] == calls_before.get(key, 0), f"{key} ran again after completing"
    return result, done_before


async def test_an_uninterrupted_run_of_the_durable_workflow_completes() -> None:
    """The reference run: loop, merge, lineage and skipping all take part."""
    Calls.reset()
    result = await run(durable_workflow(), INPUT)
    assert result.status == "completed"
    assert result.skipped("never")
    assert sorted(item["origin"] for item in result.output_of("end")) == [0, 1, 2, 3, 4]


async def test_resuming_after_a_crash_at_every_event_gives_the_same_result() -> None:
    """For every N, stop after N events, resume, and compare with the uninterrupted run."""
    Calls.reset()
    reference = await run(durable_workflow(), INPUT)
    expected = outcome(reference)
    total = len(reference.events)
    assert total > 30
    for limit in range(1, total):
        Calls.reset()
        history = InMemoryHistory()
        result, _ = await resume_after_crash(history, limit)
        assert outcome(result) == expected, f"diverged after a crash at event {limit + 1}"
        types = [e.type for e in result.events]
        assert types.count("execution.started") == 1
        assert len(completed_runs(result.events)) == len(
            [e for e in result.events if e.type == "node.completed"]
        ), "a node run was recorded as completed twice"


async def test_a_node_running_at_the_crash_runs_again_with_the_same_run_index() -> None:
    """At-least-once: a node whose completion was not recorded runs again, same key."""
    Calls.reset()
    reference = await run(durable_workflow(), INPUT)
    first_even = next(
        e.seq for e in reference.events if e.type == "node.started" and e.node_id == "even"
    )
    Calls.reset()
    history = InMemoryHistory()
    result, _ = await resume_after_crash(history, first_even)
    assert Calls.counter[("even", 0)] == 2
    starts = [e for e in result.events if e.type == "node.started" and e.node_id == "even"]
    assert [(e.data["run"], e.data["attempt"]) for e in starts] == [(0, 1), (0, 2)]


async def test_a_finished_history_is_not_run_again() -> None:
    """Replaying a completed execution only reads it."""
    Calls.reset()
    history = InMemoryHistory()
    first = await run(durable_workflow(), INPUT, history=history)
    calls = dict(Calls.counter)
    again = await run(durable_workflow(), None, history=history)
    assert dict(Calls.counter) == calls
    assert outcome(again) == outcome(first)


async def test_a_history_the_workflow_would_not_produce_is_refused() -> None:
    """Resuming with a changed graph raises NonDeterminismError instead of guessing."""
    Calls.reset()
    history = InMemoryHistory()
    with pytest.raises(Crash):
        await run(durable_workflow(), INPUT, history=CrashingHistory(history, 12))
    changed = durable_workflow()
    changed["nodes"][1]["parameters"]["condition"] = "{{ true }}"
    changed["connections"] = [c for c in changed["connections"] if c["to"] != "split"]
    with pytest.raises(NonDeterminismError):
        await run(changed, None, history=history)


async def test_expressions_see_the_time_recorded_in_node_started() -> None:
    """`now` is the instant recorded when the node started, so a replay sees the same."""
    doc = document(
        [node("start", "manual"), node("stamp", "set", parameters={"fields": {"at": "{{ now }}"}})],
        [edge("start", "stamp")],
    )
    result = await run(doc, {})
    started = next(e for e in result.events if e.type == "node.started" and e.node_id == "stamp")
    assert datetime.fromisoformat(result.output[0]["at"]) == started.timestamp


class DiesInNode:
    """The process dies each time `node_id` runs: its start is stored, its end never."""

    def __init__(self, inner: History, node_id: str) -> None:
        self.inner = inner
        self.node_id = node_id

    async def read(self) -> Sequence[Event]:
        return await self.inner.read()

    async def append(self, event: Event) -> None:
        if event.node_id == self.node_id and event.type != "node.started":
            raise Crash
        await self.inner.append(event)

    async def flush(self) -> None:
        await self.inner.flush()


VICTIM = document([node("start", "manual"), node("victim", "test_count")],
                  [edge("start", "victim")])  # fmt: skip


async def die_in_victim(history: History, times: int) -> None:
    """Run `VICTIM` `times` times, the process dying in `victim` each time."""
    for _ in range(times):
        with pytest.raises(Crash):
            await run(VICTIM, INPUT, history=DiesInNode(history, "victim"))


async def test_a_node_that_kills_its_process_every_time_fails_after_three_interruptions() -> None:
    """No crash loop: the fourth start of an interrupted node run fails it with the
    reason instead of running it again (the history records why)."""
    Calls.reset()
    history = InMemoryHistory()
    await die_in_victim(history, 3)
    assert Calls.counter[("victim", 0)] == 3
    result = await run(VICTIM, None, history=history)
    assert Calls.counter[("victim", 0)] == 3
    assert result.status == "failed"
    assert result.state.error is not None
    assert result.state.error["node_id"] == "victim"
    assert "interrupted 3 times" in result.state.error["message"]
    replayed = await run(VICTIM, None, history=history)
    assert replayed.status == "failed"


async def test_two_interruptions_still_run_the_node_again() -> None:
    Calls.reset()
    history = InMemoryHistory()
    await die_in_victim(history, 2)
    result = await run(VICTIM, None, history=history)
    assert result.status == "completed"
    assert Calls.counter[("victim", 0)] == 3
