"""Sub-workflows and error workflows read from files, for `linkflow run`.

A reference is a path relative to the directory of the file being run. Each
child runs in-process with its own in-memory history; children started
without waiting are awaited by `drain()` before the command exits.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from linkflow.engine import ExecutionInfo, InvalidWorkflow, ParentLink, RunResult
from linkflow.nodes.sdk import ChildExecution

if TYPE_CHECKING:
    from linkflow.engine import CompiledWorkflow, Engine

__all__ = ["LocalWorkflowRunner"]


class LocalWorkflowRunner:
    """`SubWorkflowRunner` over workflow files."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self._engine: Engine | None = None
        self._background: set[asyncio.Task[RunResult]] = set()
        self.results: dict[str, RunResult] = {}
        """Every child run so far, by execution id (for `linkflow run` to report)."""

    def bind(self, engine: Engine) -> None:
        """The engine children run on (it holds this runner among its services)."""
        self._engine = engine

    def _load(self, reference: str) -> object:
        path = (self.base_dir / reference).resolve()
        if not path.is_file():
            raise LookupError(reference)
        try:
            return orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            raise LookupError(reference) from None

    async def run(
        self,
        reference: str,
        input: Any,
        *,
        wait: bool,
        parent: ParentLink,
        idempotency_key: str,
        trigger: str | None = None,
    ) -> ChildExecution:
        assert self._engine is not None, "bind() the runner to its engine first"
        engine = self._engine
        execution_id = str(uuid.uuid4())
        try:
            workflow = engine.compile(self._load(reference))
        except InvalidWorkflow as invalid:
            return ChildExecution(execution_id, "failed", error={"message": str(invalid)})
        start = None
        if trigger is not None:
            start = next((n for n in workflow.triggers if workflow.nodes[n].spec.type == trigger),
                         None)  # fmt: skip
            if start is None:
                message = f"workflow {reference!r} has no {trigger!r} trigger"
                return ChildExecution(execution_id, "failed", error={"message": message})
        info = ExecutionInfo(
            execution_id=execution_id, workflow_id=reference,
            workflow_name=workflow.document.name, workflow_version=None, attempt=1,
            variables={}, depth=parent.depth + 1, parent=parent,
        )  # fmt: skip
        mode = "error" if trigger == "error" else "subworkflow"
        running = self._run(workflow, info, input, start, mode)
        if not wait:
            task = asyncio.create_task(running)
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return ChildExecution(execution_id, "running")
        result = await running
        return ChildExecution(execution_id, result.status, result.output, result.error)

    async def _run(
        self,
        workflow: CompiledWorkflow,
        info: ExecutionInfo,
        input: Any,
        start: str | None,
        mode: str,
    ) -> RunResult:
        assert self._engine is not None
        result = await self._engine.run(workflow, input=input, info=info, start_node=start,
                                        mode=mode)  # fmt: skip
        self.results[info.execution_id] = result
        return result

    async def drain(self) -> None:
        """Wait for the children started without waiting."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
