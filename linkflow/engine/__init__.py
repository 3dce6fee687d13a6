"""The workflow engine: documents, validation, expressions and the durable executor.

The engine knows nodes only through `linkflow.nodes.sdk` and the world only
through the protocols it defines here (history, clock, entropy, cancellation).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from linkflow.engine.context import ExecutionInfo
from linkflow.engine.document import Problem, WorkflowDocument, parse_document
from linkflow.engine.events import TERMINAL_EVENTS, Event, EventType
from linkflow.engine.executor import Executor, NonDeterminismError, Observer, Resume
from linkflow.engine.expressions import Dialect, JinjaDialect
from linkflow.engine.history import History, HistoryConflict, InMemoryHistory
from linkflow.engine.result import RunResult
from linkflow.engine.runtime import (
    Cancellation,
    Clock,
    CredentialResolver,
    Entropy,
    NodeServices,
    ParentLink,
    SubWorkflowRunner,
    SystemClock,
    SystemEntropy,
)
from linkflow.engine.state import ExecutionState, ExecutionStatus
from linkflow.engine.validation import CompiledWorkflow, InvalidWorkflow, compile_workflow
from linkflow.nodes.registry import NodeRegistry, default_registry
from linkflow.nodes.sdk import ChildExecution

__all__ = [
    "TERMINAL_EVENTS",
    "Cancellation",
    "Clock",
    "CompiledWorkflow",
    "CredentialResolver",
    "Dialect",
    "Engine",
    "Entropy",
    "Event",
    "EventType",
    "ExecutionInfo",
    "ExecutionState",
    "ExecutionStatus",
    "Executor",
    "History",
    "HistoryConflict",
    "InMemoryHistory",
    "InvalidWorkflow",
    "JinjaDialect",
    "NodeServices",
    "NonDeterminismError",
    "ParentLink",
    "Problem",
    "Resume",
    "RunResult",
    "SubWorkflowRunner",
    "SystemClock",
    "SystemEntropy",
    "WorkflowDocument",
    "compile_workflow",
    "parse_document",
    "run_workflow",
]


class Engine:
    """One per process: the node registry and the expression dialect, shared by all runs."""

    def __init__(
        self,
        registry: NodeRegistry | None = None,
        dialect: Dialect | None = None,
        services: NodeServices | None = None,
    ) -> None:
        self.registry = registry if registry is not None else default_registry()
        self.dialect: Dialect = dialect if dialect is not None else JinjaDialect()
        self.services = services or NodeServices()

    def compile(self, document: object) -> CompiledWorkflow:
        """Validate and compile a document; raises `InvalidWorkflow` listing every problem."""
        return compile_workflow(document, self.registry, self.dialect)

    async def run(
        self,
        workflow: CompiledWorkflow,
        *,
        input: Any = None,
        history: History | None = None,
        info: ExecutionInfo | None = None,
        start_node: str | None = None,
        mode: str = "manual",
        resume: Resume | None = None,
        clock: Clock | None = None,
        entropy: Entropy | None = None,
        cancellation: Cancellation | None = None,
        observer: Observer | None = None,
        on_end: Callable[[ExecutionState], None] | None = None,
    ) -> RunResult:
        """Run an execution until it ends or waits, or continue it from `history`.

        When it fails and its workflow names an `error_workflow`, that workflow
        is started with the failure (unless this is itself an error workflow).
        `on_end` hears of the ended state before the end is flushed (a worker's
        projection of the run onto rows, to be durable in the same write).
        """
        history = history if history is not None else InMemoryHistory()
        info = info or ExecutionInfo(
            execution_id=str(uuid.uuid4()), workflow_id=None,
            workflow_name=workflow.document.name, workflow_version=None,
            attempt=1, variables={},
        )  # fmt: skip
        executor = Executor(
            workflow, history, info, clock=clock, entropy=entropy,
            cancellation=cancellation, observer=observer, services=self.services, on_end=on_end,
        )  # fmt: skip
        state = await executor.run(input=input, start_node=start_node, mode=mode, resume=resume)
        error_run = await self._start_error_workflow(workflow, info, state)
        return RunResult(state=state, events=executor.events, error_workflow=error_run)

    async def _start_error_workflow(
        self, workflow: CompiledWorkflow, info: ExecutionInfo, state: ExecutionState
    ) -> ChildExecution | None:
        reference = workflow.document.settings.error_workflow
        runner = self.services.workflows
        failed = state.status in (ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT)
        if not failed or reference is None or runner is None or state.mode == "error":
            return None
        payload = {
            "execution": {"id": info.execution_id, "mode": state.mode,
                          "status": state.status.value},
            "workflow": {"id": info.workflow_id, "name": workflow.document.name},
            "error": state.error or {},
        }  # fmt: skip
        parent = ParentLink(info.execution_id, info.workflow_id, None, info.depth)
        try:
            return await runner.run(
                reference, payload, wait=True, parent=parent,
                idempotency_key=f"{info.execution_id}:error_workflow", trigger="error",
            )  # fmt: skip
        except LookupError:
            return ChildExecution(
                execution_id="", status="failed",
                error={"message": f"error workflow {reference!r} was not found"},
            )  # fmt: skip


async def run_workflow(
    document: Mapping[str, Any],
    *,
    input: Any = None,
    registry: NodeRegistry | None = None,
    variables: Mapping[str, Any] | None = None,
    history: History | None = None,
) -> RunResult:
    """Validate and run a workflow document in-process (in-memory history by default).

    A convenience for `linkflow run` and tests; servers keep one `Engine` per process.
    """
    engine = Engine(registry)
    workflow = engine.compile(document)
    info = ExecutionInfo(
        execution_id=str(uuid.uuid4()), workflow_id=None, workflow_name=workflow.document.name,
        workflow_version=None, attempt=1, variables=dict(variables or {}),
    )  # fmt: skip
    return await engine.run(workflow, input=input, history=history, info=info)
