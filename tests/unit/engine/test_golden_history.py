"""Golden histories: recorded executions that must replay, step for step, forever.

A change to how the engine decides, or to the shape of its events, makes these
fail: stored histories in users' databases would no longer resume. To record
the file anew on purpose, run `python -m tests.unit.engine.test_golden_history`
and review the diff (and think about the histories already stored).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from linkflow.engine import Event, EventType, InMemoryHistory
from tests.unit.engine._nodes import Calls
from tests.unit.engine._support import run
from tests.unit.engine.test_replay import INPUT, durable_workflow, outcome

GOLDEN = Path(__file__).parent / "golden" / "durable_workflow.json"


def _load() -> tuple[list[Event], dict[str, Any]]:
    raw = json.loads(GOLDEN.read_text())
    events = [
        Event(e["seq"], EventType(e["type"]), e["node_id"], e["data"],
              datetime.fromisoformat(e["timestamp"]))
        for e in raw["events"]
    ]  # fmt: skip
    return events, raw["outcome"]


async def test_the_golden_history_replays_to_the_recorded_outcome() -> None:
    """Replaying the stored events re-derives every decision and the same final state."""
    Calls.reset()
    events, expected = _load()
    result = await run(durable_workflow(), None, history=InMemoryHistory(events))
    assert outcome(result) == expected
    assert not Calls.counter, "replaying a finished history ran a node"


async def test_a_fresh_run_still_writes_the_golden_history() -> None:
    """The same input produces the same events (types, nodes, data) as recorded."""
    Calls.reset()
    events, _ = _load()
    result = await run(durable_workflow(), INPUT)
    fresh = [(e.type, e.node_id, e.data) for e in result.events]
    assert fresh == [(e.type, e.node_id, e.data) for e in events]


async def _record() -> None:
    Calls.reset()
    result = await run(durable_workflow(), INPUT)
    GOLDEN.write_text(
        json.dumps({"events": [e.to_json() for e in result.events], "outcome": outcome(result)},
                   indent=1) + "\n"
    )  # fmt: skip


if __name__ == "__main__":
    asyncio.run(_record())
