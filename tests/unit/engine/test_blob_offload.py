"""Large node outputs go to the blob store; the history keeps a reference."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from linkflow.blobs import FilesystemBlobStore
from linkflow.engine import Engine, InMemoryHistory, NodeServices
from tests.unit.engine._nodes import Calls, registry_with_big
from tests.unit.engine._support import StepClock, document, edge, info, node
from tests.unit.engine.test_replay import Crash, CrashingHistory

FIFTY_MB = {"count": 50, "size": 1024 * 1024}


def big_workflow() -> dict:
    return document(
        [
            node("start", "manual"),
            node("big", "test_big", parameters=FIFTY_MB),
            node("sizes", "set", parameters={
                "fields": {"length": "{{ json.blob | length }}"}, "keep_only_set": True}),
            node("total", "aggregate", parameters={"mode": "all_items"}),
        ],
        [edge("start", "big"), edge("big", "sizes"), edge("sizes", "total")],
    )  # fmt: skip


def engine_with_blobs(root: Path) -> Engine:
    services = NodeServices(blobs=FilesystemBlobStore(root), blob_threshold_bytes=1024 * 1024)
    return Engine(registry_with_big(), services=services)


async def test_a_50_mb_output_is_stored_as_a_blob_and_the_history_stays_small(
    tmp_path: Path,
) -> None:
    """The node.completed event holds a ref; downstream nodes read the items as usual."""
    engine = engine_with_blobs(tmp_path)
    history = InMemoryHistory()
    result = await engine.run(engine.compile(big_workflow()), input={}, history=history,
                              info=info(), clock=StepClock())  # fmt: skip
    assert result.status == "completed"
    assert result.output[0]["data"] == [{"length": 1024 * 1024}] * 50
    history_size = len(orjson.dumps([event.to_json() for event in history.events]))
    assert history_size < 64 * 1024
    big_event = next(e for e in history.events if e.type == "node.completed" and e.node_id == "big")
    assert "outputs" not in big_event.data
    stored = await FilesystemBlobStore(tmp_path).get(big_event.data["outputs_ref"])
    assert len(stored) > 50 * 1024 * 1024


async def test_small_outputs_stay_inline() -> None:
    """Under the threshold nothing goes to the blob store."""
    engine = Engine(registry_with_big(), services=NodeServices(blob_threshold_bytes=1024 * 1024))
    doc = big_workflow()
    doc["nodes"][1]["parameters"] = {"count": 2, "size": 10}
    result = await engine.run(engine.compile(doc), input={}, info=info(), clock=StepClock())
    big_event = next(e for e in result.events if e.type == "node.completed" and e.node_id == "big")
    assert len(big_event.data["outputs"]["main"]) == 2


async def test_replay_reads_blob_outputs_back_without_running_the_node_again(
    tmp_path: Path,
) -> None:
    """A crash after the big node: resuming loads its items from the blob store."""
    Calls.reset()
    engine = engine_with_blobs(tmp_path)
    workflow = engine.compile(big_workflow())
    history = InMemoryHistory()
    big_done = 5  # execution.started, start x2, big.started, big.completed
    with pytest.raises(Crash):
        await engine.run(workflow, input={}, history=CrashingHistory(history, big_done),
                         info=info(), clock=StepClock())  # fmt: skip
    assert history.events[-1].data.get("outputs_ref")
    result = await engine.run(workflow, history=history, info=info(), clock=StepClock())
    assert result.status == "completed"
    assert Calls.counter[("big", 0)] == 1
    assert result.output[0]["data"][0] == {"length": 1024 * 1024}
