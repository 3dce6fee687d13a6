"""The workflow engine: documents, validation, expressions and the durable executor.

The engine knows nodes only through `linkflow.nodes.sdk` and the world only
through the protocols it defines here (history, clock, entropy, cancellation).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from linkflow.engine.context import ExecutionInfo
from linkflow.engine.document import Problem, WorkflowDocument, parse_document
from linkflow.engine.events import TERMINAL_EVENTS, Event, EventType
from linkflow.engine.executor import Executor, NonDeterminismError, Observer
from linkflow.engine.expressions import Dialect, JinjaDialect
from linkflow.engine.history import History, HistoryConflict, InMemoryHistory
from linkflow.engine.result import RunResult
from linkflow.engine.runtime import (
    Cancellation,
    Clock,
    CredentialResolver,
    Entropy,
    NodeServices,
    SystemClock,
    SystemEntropy,
)
from linkflow.engine.state import ExecutionStatus
from linkflow.engine.validation import CompiledWorkflow, InvalidWorkflow, compile_workflow
from linkflow.nodes.registry import NodeRegistry, default_registry

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
    "ExecutionStatus",
    "Executor",
    "History",
    "HistoryConflict",
    "InMemoryHistory",
    "InvalidWorkflow",
    "JinjaDialect",
    "NodeServices",
    "NonDeterminismError",
    "Problem",
    "RunResult",
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
        clock: Clock | None = None,
        entropy: Entropy | None = None,
        cancellation: Cancellation | None = None,
        observer: Observer | None = None,
    ) -> RunResult:
        """Run an execution to its end, or resume it from `history`."""
        history = history if history is not None else InMemoryHistory()
        info = info or ExecutionInfo(
            execution_id=str(uuid.uuid4()), workflow_id=None,
            workflow_name=workflow.document.name, workflow_version=None,
            attempt=1, variables={},
        )  # fmt: skip
        executor = Executor(
            workflow, history, info, clock=clock, entropy=entropy,
            cancellation=cancellation, observer=observer, services=self.services,
        )  # fmt: skip
        state = await executor.run(input=input, start_node=start_node, mode=mode)
        return RunResult(state=state, events=await history.read())


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
