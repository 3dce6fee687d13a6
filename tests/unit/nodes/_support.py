"""Helpers for node tests: one-line documents, run on the real engine with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from linkflow.engine import Engine, InvalidWorkflow, RunResult
from linkflow.nodes.registry import default_registry

NOW = datetime(2024, 1, 31, 12, 0, 0, tzinfo=UTC)
"""What `ctx.now()` returns in these tests: a month's last day, to exercise clamping."""

NODE = "node"
"""The id of the node under test in `run_node`'s documents."""
START = "start"
"""The id of the manual trigger in `run_node`'s documents."""


class FixedClock:
    """Time stands still, so `ctx.now()` is `NOW` in every node run."""

    def now(self) -> datetime:
        return NOW

    async def sleep(self, seconds: float) -> None:
        return None


class CountingEntropy:
    """Deterministic UUIDs: 00000000-0000-4000-8000-000000000001, ...002, ..."""

    def __init__(self) -> None:
        self.count = 0

    def uuid4(self) -> str:
        self.count += 1
        return f"00000000-0000-4000-8000-{self.count:012d}"

    def random(self) -> float:
        self.count += 1
        return (self.count % 100) / 100


def node(
    node_id: str, type_: str, parameters: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    return {"id": node_id, "type": type_, "parameters": parameters or {}, **fields}


def edge(source: str, target: str, output: str = "main", input_: int = 0) -> dict[str, Any]:
    return {"from": source, "to": target, "output": output, "input": input_}


def document(nodes: list[dict[str, Any]], connections: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "test", "nodes": nodes, "connections": connections}


_ENGINE = Engine(default_registry(plugins=False))


async def run(doc: dict[str, Any], input_: Any = None) -> RunResult:
    """Validate and run `doc` on the real engine, with `FixedClock` and `CountingEntropy`."""
    workflow = _ENGINE.compile(doc)
    return await _ENGINE.run(workflow, input=input_, clock=FixedClock(), entropy=CountingEntropy())


async def run_node(
    type_: str, parameters: dict[str, Any] | None = None, input_: Any = None, **fields: Any
) -> RunResult:
    """Run `manual (START) → type_ (NODE)` with `input_` as the execution's input."""
    doc = document(
        [node(START, "manual"), node(NODE, type_, parameters, **fields)], [edge(START, NODE)]
    )
    return await run(doc, input_)


def problems(doc: dict[str, Any]) -> list[str]:
    """The messages of the problems that make `doc` invalid (empty when it is valid)."""
    try:
        _ENGINE.compile(doc)
    except InvalidWorkflow as error:
        return [problem.message for problem in error.problems]
    return []


def node_problems(type_: str, parameters: dict[str, Any]) -> list[str]:
    """The problems of `manual → type_` with these parameters."""
    return problems(
        document([node(START, "manual"), node(NODE, type_, parameters)], [edge(START, NODE)])
    )


async def run_trigger(
    type_: str, parameters: dict[str, Any] | None = None, input_: Any = None
) -> RunResult:
    """Run a workflow made of one trigger node (NODE) with `input_` as the execution's input."""
    return await run(document([node(NODE, type_, parameters)], []), input_)
