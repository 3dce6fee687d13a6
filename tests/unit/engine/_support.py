"""Helpers for engine tests: documents in one line, a clock that does not wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from linkflow.engine import Engine, ExecutionInfo, RunResult
from tests.unit.engine import _nodes

START = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)


def node(node_id: str, type_: str, **fields: Any) -> dict[str, Any]:
    parameters = fields.pop("parameters", {})
    return {"id": node_id, "type": type_, "parameters": parameters, **fields}


def edge(source: str, target: str, output: str = "main", input_: int = 0) -> dict[str, Any]:
    return {"from": source, "to": target, "output": output, "input": input_}


def document(
    nodes: list[dict[str, Any]], connections: list[dict[str, Any]], **settings: Any
) -> dict[str, Any]:
    return {"name": "test", "nodes": nodes, "connections": connections, "settings": settings}


class StepClock:
    """A clock for tests: time advances 1 ms per reading, and sleeping only records."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        self.current += timedelta(milliseconds=1)
        return self.current

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.current += timedelta(seconds=seconds)


class CountingEntropy:
    """Deterministic ids: the same sequence in every run."""

    def __init__(self) -> None:
        self.count = 0

    def uuid4(self) -> str:
        self.count += 1
        return f"00000000-0000-4000-8000-{self.count:012d}"

    def random(self) -> float:
        self.count += 1
        return (self.count % 100) / 100


def engine() -> Engine:
    return Engine(_nodes.registry())


def info(name: str = "test", variables: dict[str, Any] | None = None) -> ExecutionInfo:
    return ExecutionInfo(
        execution_id="exec-1",
        workflow_id="wf-1",
        workflow_name=name,
        workflow_version=3,
        attempt=1,
        variables=variables or {},
    )


async def run(
    doc: dict[str, Any],
    input_: Any = None,
    *,
    variables: dict[str, Any] | None = None,
    **kwargs: Any,
) -> RunResult:
    eng = engine()
    workflow = eng.compile(doc)
    kwargs.setdefault("clock", StepClock())
    kwargs.setdefault("entropy", CountingEntropy())
    kwargs.setdefault("info", info(workflow.document.name, variables))
    return await eng.run(workflow, input=input_, **kwargs)


def started_order(result: RunResult) -> list[str]:
    return [e.node_id for e in result.events if e.type == "node.started" and e.node_id]
