"""The `NodeContext` the engine hands a node, and the scope its expressions see.

The scope is built lazily: a node whose parameters hold no expression never
pays for one, and a scope is built once per item that needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from linkflow.engine.lineage import ItemRef, LineageError, locate, trace
from linkflow.engine.parameters import CompiledParameters, ParameterError
from linkflow.engine.runtime import Entropy, NodeServices, ParentLink
from linkflow.engine.state import ExecutionState, NodeRun
from linkflow.nodes.sdk import (
    MAIN,
    BlobStore,
    ChildExecution,
    CodeRunner,
    Item,
    JsonObject,
    NodeError,
    OnError,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["ExecutionInfo", "RunContext"]


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    """Facts about the execution that expressions may read."""

    execution_id: str
    workflow_id: str | None
    workflow_name: str
    workflow_version: int | None
    attempt: int
    variables: Mapping[str, Any]
    depth: int = 0
    """How deep in sub-workflows this execution runs (0: started directly)."""
    parent: ParentLink | None = None
    resume_url: str | None = None
    """Where a waiting execution's resume webhook is called (`execution.resume_url`)."""


RESOLVE_TIMEOUT_S = 10.0
"""A name that takes longer to resolve fails the node (retryably) rather than hang it."""

MAX_DEPTH = 10
"""Sub-workflows nest at most this deep: deeper is almost surely unbounded recursion."""

CHILD_ENDED = frozenset({"completed", "failed", "cancelled", "timeout"})
"""A child execution in one of these has an outcome; in any other it is still going."""


class _Rng:
    """Randomness for expressions (`uuid()`), drawn from the engine's entropy source."""

    __slots__ = ("_entropy",)

    def __init__(self, entropy: Entropy) -> None:
        self._entropy = entropy

    def uuid4(self) -> str:
        return self._entropy.uuid4()

    def random(self) -> float:
        return self._entropy.random()


class NodeView:
    """`node["x"]` in an expression: node x's items, and the item linked to the current one."""

    __slots__ = ("_context", "_item_index", "_node_id")

    def __init__(self, context: RunContext, node_id: str, item_index: int) -> None:
        self._context = context
        self._node_id = node_id
        self._item_index = item_index

    def _last_run(self) -> NodeRun:
        runs = self._context.execution_state.runs[self._node_id]
        if not runs or not runs[-1].outputs:
            raise LineageError(f"node {self._node_id!r} has not produced any items yet")
        return runs[-1]

    @property
    def items(self) -> list[JsonObject]:
        """The node's last run's items: its `main` output, else all outputs in order."""
        outputs = self._last_run().outputs
        if MAIN in outputs:
            return [item.json for item in outputs[MAIN]]
        return [item.json for items in outputs.values() for item in items]

    @property
    def json(self) -> JsonObject:
        items = self.items
        return items[0] if items else {}

    @property
    def item(self) -> JsonObject:
        ref = self._context.trace(self._item_index, self._node_id)
        node_id, run, output, index = ref
        return self._context.execution_state.runs[node_id][run].outputs[output][index].json


class NodeLookup:
    """The `node` name in expressions; accepts a node id or display name."""

    __slots__ = ("_context", "_item_index")

    def __init__(self, context: RunContext, item_index: int) -> None:
        self._context = context
        self._item_index = item_index

    def __getitem__(self, name: str) -> NodeView:
        node_id = self._context.execution_state.workflow.names.get(name)
        if node_id is None:
            raise LineageError(f"there is no node {name!r}")
        if node_id == self._context.node_id:
            raise LineageError(f"node {name!r} cannot refer to its own output")
        return NodeView(self._context, node_id, self._item_index)

    def __getattr__(self, name: str) -> NodeView:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]


class RunContext:
    """`NodeContext` for one attempt of one node run."""

    def __init__(
        self,
        *,
        state: ExecutionState,
        run: NodeRun,
        inputs: Sequence[Sequence[Item]],
        parameters: CompiledParameters,
        info: ExecutionInfo,
        entropy: Entropy,
        on_error: OnError,
        node_name: str,
        credentials: Mapping[str, str],
        services: NodeServices,
    ) -> None:
        self.execution_state = state
        self._run = run
        self._inputs = inputs
        self._parameters = parameters
        self._info = info
        self._entropy = entropy
        self._on_error = on_error
        self._node_name = node_name
        self._credentials = credentials
        self._services = services
        self._children = 0
        self.awaiting: list[str] = []
        """Children this run waits for that have not ended: the run then waits for them."""
        self.logs: list[JsonObject] = []

    # -- NodeContext ---------------------------------------------------------

    @property
    def execution_id(self) -> str:
        return self._info.execution_id

    @property
    def workflow_id(self) -> str | None:
        return self._info.workflow_id

    @property
    def node_id(self) -> str:
        return self._run.node_id

    @property
    def node_name(self) -> str:
        return self._node_name

    @property
    def run_index(self) -> int:
        return self._run.index

    @property
    def attempt(self) -> int:
        return self._run.attempts

    @property
    def idempotency_key(self) -> str:
        return f"{self._info.execution_id}:{self._run.node_id}:{self._run.index}"

    @property
    def on_error(self) -> OnError:
        return self._on_error

    @property
    def inputs(self) -> Sequence[Sequence[Item]]:
        return self._inputs

    @property
    def items(self) -> Sequence[Item]:
        return self._inputs[0] if self._inputs else ()

    @property
    def state(self) -> JsonObject | None:
        runs = self.execution_state.runs[self._run.node_id]
        return runs[-2].state if len(runs) > 1 else None

    @property
    def trigger_input(self) -> Any:
        return self.execution_state.input

    @property
    def raw_parameters(self) -> Mapping[str, Any]:
        return self._parameters.raw

    def param(
        self,
        name: str,
        item_index: int = 0,
        default: Any = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        if self._parameters.is_static(name):
            return self._parameters.get(name, None, default)
        scope = self.scope(item_index)
        if extra:
            scope.update(extra)
        try:
            return self._parameters.get(name, scope, default)
        except ParameterError as error:
            raise NodeError(error.describe(item_index), item_index=item_index) from None
        except LineageError as error:
            raise NodeError(f"parameter {name!r}: {error}", item_index=item_index) from None

    def now(self) -> datetime:
        return self._run.now

    def uuid4(self) -> str:
        return self._entropy.uuid4()

    def log(self, message: str, **fields: Any) -> None:
        self.logs.append({"message": message, **fields})

    async def credential(self, slot: str) -> JsonObject:
        reference = self._credentials.get(slot)
        if reference is None:
            raise NodeError(f"the node has no credential in slot {slot!r}")
        resolver = self._services.credentials
        if resolver is None:
            raise NodeError("credentials are not available in this process")
        try:
            return await resolver.resolve(reference)
        except LookupError:
            raise NodeError(f"credential {reference!r} (slot {slot!r}) was not found") from None

    def http(self) -> httpx.AsyncClient:
        if self._services.http is None:
            raise NodeError("HTTP is not available in this process")
        return self._services.http()

    async def resolve_host(self, host: str, port: int) -> Sequence[str]:
        if self._services.addresses is None:
            raise NodeError("network connections are not available in this process")
        return await self._services.addresses.resolve(host, port, timeout_s=RESOLVE_TIMEOUT_S)

    @property
    def blobs(self) -> BlobStore:
        if self._services.blobs is None:
            raise NodeError("the blob store is not available in this process")
        return self._services.blobs

    @property
    def code(self) -> CodeRunner:
        if self._services.code is None:
            raise NodeError("running code is not available in this process")
        return self._services.code

    @property
    def resume(self) -> JsonObject | None:
        return self.execution_state.resume_for(self._run.node_id, self._run.index)

    async def run_workflow(self, reference: str, input: Any, *, wait: bool) -> ChildExecution:
        runner = self._services.workflows
        if runner is None:
            raise NodeError("sub-workflows are not available in this process")
        info = self._info
        if info.depth + 1 > MAX_DEPTH:
            raise NodeError(f"sub-workflows nest at most {MAX_DEPTH} deep; is it recursing?")
        self._children += 1
        parent = ParentLink(info.execution_id, info.workflow_id, self.node_id, info.depth)
        try:
            child = await runner.run(
                reference, input, wait=wait, parent=parent,
                idempotency_key=f"{self.idempotency_key}:{self._children}",
            )  # fmt: skip
        except LookupError:
            raise NodeError(f"workflow {reference!r} was not found") from None
        if wait and child.status not in CHILD_ENDED:
            self.awaiting.append(child.execution_id)
        return child

    # -- expressions ---------------------------------------------------------

    @cached_property
    def _input_jsons(self) -> list[JsonObject]:
        return [item.json for item in self.items]

    @cached_property
    def _trigger_jsons(self) -> list[JsonObject]:
        start = self.execution_state.start_node
        if start is None or not self.execution_state.runs[start]:
            return []
        return [
            item.json
            for items in self.execution_state.runs[start][0].outputs.values()
            for item in items
        ]

    @cached_property
    def _base_scope(self) -> dict[str, object]:
        info = self._info
        now = self._run.now
        return {
            "items": self._input_jsons,
            "trigger": self._trigger_jsons,
            "vars": info.variables,
            "execution": {
                "id": info.execution_id,
                "mode": self.execution_state.mode,
                "attempt": info.attempt,
                "resume_url": info.resume_url,
            },
            "workflow": {
                "id": info.workflow_id,
                "name": info.workflow_name,
                "version": info.workflow_version,
            },
            "now": now,
            "today": now.date(),
            "_rng": _Rng(self._entropy),
        }

    def scope(self, item_index: int) -> dict[str, object]:
        items = self._input_jsons
        scope = dict(self._base_scope)
        scope["json"] = items[item_index] if item_index < len(items) else {}
        scope["item_index"] = item_index
        scope["node"] = NodeLookup(self, item_index)
        return scope

    def trace(self, item_index: int, target: str) -> ItemRef:
        """The item of node `target` that input item `item_index` descends from."""
        if not self._run.inputs:
            raise LineageError(f"node {self.node_id!r} has no input items to trace")
        start = locate(self._run.inputs[0], item_index)
        if start is None:
            raise LineageError(f"node {self.node_id!r} has no input item {item_index}")
        return trace(self.execution_state, start, target)
