"""execute_workflow: child executions from files, linked both ways, depth-limited."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from linkflow.engine import Engine, ExecutionInfo, NodeServices, RunResult
from linkflow.services.local_workflows import LocalWorkflowRunner


def write(path: Path, nodes: list[dict[str, Any]], connections: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({"name": path.stem, "nodes": nodes, "connections": connections}))


def chain(*nodes: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ids = [n["id"] for n in nodes]
    return list(nodes), [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]


def local_engine(base: Path) -> tuple[Engine, LocalWorkflowRunner]:
    runner = LocalWorkflowRunner(base)
    engine = Engine(services=NodeServices(workflows=runner))
    runner.bind(engine)
    return engine, runner


async def run_file(base: Path, name: str, input_: Any) -> tuple[RunResult, LocalWorkflowRunner]:
    engine, runner = local_engine(base)
    workflow = engine.compile(json.loads((base / name).read_text()))
    info = ExecutionInfo("parent-1", name, name, None, 1, {})
    result = await engine.run(workflow, input=input_, info=info)
    await runner.drain()
    return result, runner


def call(target: str, **parameters: Any) -> dict[str, Any]:
    return {"id": "call", "type": "execute_workflow",
            "parameters": {"workflow_id": target, **parameters}}  # fmt: skip


async def test_wait_true_returns_the_childs_output_and_links_both_ways(tmp_path: Path) -> None:
    """The parent records the child id; the child's history names its parent."""
    write(tmp_path / "child.json", *chain(
        {"id": "start", "type": "manual"},
        {"id": "total", "type": "aggregate", "parameters": {"mode": "all_items"}},
    ))  # fmt: skip
    write(tmp_path / "parent.json", *chain({"id": "start", "type": "manual"}, call("child.json")))
    result, runner = await run_file(tmp_path, "parent.json", [{"a": 1}, {"a": 2}])
    assert result.output == [{"data": [{"a": 1}, {"a": 2}]}]
    completed = next(e for e in result.events if e.type == "node.completed" and e.node_id == "call")
    (child_id,) = completed.data["meta"]["child_executions"]
    child = runner.results[child_id]
    started = child.events[0]
    assert started.data["parent"] == {"execution_id": "parent-1", "workflow_id": "parent.json",
                                      "node_id": "call"}  # fmt: skip
    assert started.data["mode"] == "subworkflow"


async def test_wait_false_passes_the_items_on_while_the_child_runs(tmp_path: Path) -> None:
    """Without waiting, the input items continue; the child still completes."""
    write(tmp_path / "child.json", *chain(
        {"id": "start", "type": "manual"},
        {"id": "pause", "type": "wait", "parameters": {"seconds": 0}},
    ))  # fmt: skip
    write(tmp_path / "parent.json",
          *chain({"id": "start", "type": "manual"}, call("child.json", wait=False)))  # fmt: skip
    result, runner = await run_file(tmp_path, "parent.json", {"x": 1})
    assert result.output == [{"x": 1}]
    assert [r.status for r in runner.results.values()] == ["completed"]


async def test_a_failed_child_fails_the_calling_node(tmp_path: Path) -> None:
    """The child's error message reaches the parent's error."""
    write(tmp_path / "child.json", *chain(
        {"id": "start", "type": "manual"},
        {"id": "boom", "type": "stop_and_error", "parameters": {"message": "child broke"}},
    ))  # fmt: skip
    write(tmp_path / "parent.json", *chain({"id": "start", "type": "manual"}, call("child.json")))
    result, _ = await run_file(tmp_path, "parent.json", {})
    assert result.status == "failed"
    assert result.error == {"message": "sub-workflow 'child.json' failed: child broke",
                            "node_id": "call"}  # fmt: skip


async def test_an_unknown_workflow_is_a_clear_error(tmp_path: Path) -> None:
    """A missing file names the reference."""
    write(tmp_path / "parent.json", *chain({"id": "start", "type": "manual"}, call("nope.json")))
    result, _ = await run_file(tmp_path, "parent.json", {})
    assert result.error["message"] == "workflow 'nope.json' was not found"


async def test_recursion_stops_at_the_depth_limit(tmp_path: Path) -> None:
    """A workflow that calls itself fails with the nesting limit, not a hang."""
    write(tmp_path / "self.json", *chain({"id": "start", "type": "manual"}, call("self.json")))
    result, _ = await run_file(tmp_path, "self.json", {})
    assert result.status == "failed"
    assert "nest at most 10 deep" in result.error["message"]


async def test_each_item_starts_one_child_per_item_with_explicit_input(tmp_path: Path) -> None:
    """`mode: each_item` and an `input` expression; outputs trace to their items."""
    write(tmp_path / "child.json", *chain({"id": "start", "type": "manual"}))
    write(tmp_path / "parent.json", *chain(
        {"id": "start", "type": "manual"},
        call("child.json", mode="each_item", input={"double": "{{ json.n * 2 }}"}),
    ))  # fmt: skip
    result, runner = await run_file(tmp_path, "parent.json", [{"n": 1}, {"n": 4}])
    assert result.output == [{"double": 2}, {"double": 8}]
    assert result.item_lineage("call") == [[("start", 0, 0)], [("start", 0, 1)]]
    assert len(runner.results) == 2
