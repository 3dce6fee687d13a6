"""Everything a node author needs, and nothing more.

A node type is one class: it declares what it is (type name, group, inputs,
outputs, a JSON Schema for its parameters, how its output items descend from
its input items) and implements `run`. The engine calls `run` once per
activation with a `NodeContext`, which gives the input items, the parameters
evaluated for any item, recorded time and randomness, and the previous run's
state. A node never imports the engine: this module is the whole contract
between them, and its exported names are pinned by a test.

Determinism: `run` may do I/O (that is what nodes are for), but time and
randomness must come from the context (`ctx.now()`, `ctx.uuid4()`), so that the
history records them and a replay is exact.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from linkflow.nodes._credentials import (
    AddressGuard,
    CheckContext,
    CredentialCheck,
    CredentialField,
    CredentialType,
    OAuth2Flow,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ERROR_OUTPUT",
    "MAIN",
    "AddressGuard",
    "BinaryRef",
    "BlobStore",
    "CheckContext",
    "ChildExecution",
    "CodeMode",
    "CodeRequest",
    "CodeResult",
    "CodeRunner",
    "CredentialCheck",
    "CredentialField",
    "CredentialType",
    "Item",
    "JsonObject",
    "Lineage",
    "Node",
    "NodeContext",
    "NodeError",
    "NodeGroup",
    "NodeResult",
    "OAuth2Flow",
    "OnError",
    "Pair",
    "Response",
    "Wait",
    "amap_items",
    "error_item",
    "map_items",
    "route_items",
]

JsonObject = dict[str, Any]
"""An item's data: a JSON object."""

MAIN = "main"
"""The name of a node's default output."""
ERROR_OUTPUT = "error"
"""The output that receives failed items when a node's `on_error` is `output`."""


class NodeGroup(StrEnum):
    TRIGGER = "trigger"
    FLOW = "flow"
    DATA = "data"
    ACTION = "action"


class Lineage(StrEnum):
    """How a node type's output items descend from its input items.

    The engine uses the rule for items whose `paired` the node left as None.
    """

    ONE_TO_ONE = "one_to_one"
    """Output item i comes from input item i (or the node returned input items as they are)."""
    ONE_TO_MANY = "one_to_many"
    """Each output item names its source with `paired` (e.g. split_out)."""
    MANY_TO_ONE = "many_to_one"
    """Each output item comes from all input items (e.g. aggregate)."""
    EXPLICIT = "explicit"
    """The node sets `paired`; when it does not, one-to-one is assumed if the counts match."""


class OnError(StrEnum):
    STOP = "stop"
    """A failure fails the execution (after retries)."""
    CONTINUE = "continue"
    """A failure is recorded; the node's input items continue on `main` with an `error` key."""
    OUTPUT = "output"
    """Failed items go to the node's `error` output, the others continue normally."""


@dataclass(frozen=True, slots=True)
class Pair:
    """A lineage link: the item at `index` of the node's input number `input`.

    `run` names an earlier activation of the same node (its `run_index`) whose
    input holds the item; None means the current activation. The loop node uses
    it to pair later batches with the items it received on its first run.
    """

    input: int
    index: int
    run: int | None = None


@dataclass(frozen=True, slots=True)
class Item:
    """One item flowing along a connection.

    `paired` lists the input items this one descends from. Leave it None to let
    the engine apply the node type's `lineage` rule; returning an input item
    object unchanged always pairs it with itself.
    """

    json: JsonObject
    paired: tuple[Pair, ...] | None = None
    binary: Mapping[str, JsonObject] | None = None

    def derive(self, json: JsonObject, index: int, input: int = 0) -> Item:
        """A new item with `json`, descending from input item `index`, keeping binaries."""
        return Item(json=json, paired=(Pair(input, index),), binary=self.binary)


@dataclass(frozen=True, slots=True)
class Wait:
    """Suspend the execution at this node until `until` (aware UTC) or, when
    `webhook` is true, until its resume webhook is called (whichever comes first
    when both are set). The node runs again on resumption with `ctx.resume` set."""

    until: datetime | None = None
    webhook: bool = False


@dataclass(frozen=True, slots=True)
class Response:
    """The answer for the webhook caller (respond_to_webhook); the first one wins."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True, slots=True)
class ChildExecution:
    """A sub-workflow execution started by `ctx.run_workflow`."""

    execution_id: str
    status: str
    output: Sequence[JsonObject] = ()
    error: JsonObject | None = None


@dataclass(frozen=True, slots=True)
class NodeResult:
    """What one activation of a node produced.

    `outputs` maps output names to items; outputs not named deliver nothing, and
    nodes downstream of an output that delivers nothing are skipped. `state` is
    kept in the history and handed to the next run of this node in the same
    execution (`ctx.state`), e.g. the loop node's remaining batches. `wait`
    suspends the execution here (outputs are then ignored); `response` answers
    a waiting webhook caller; `meta` is recorded with the node's completion
    (e.g. the ids of child executions).
    """

    outputs: Mapping[str, Sequence[Item]] = field(default_factory=dict)
    state: JsonObject | None = None
    wait: Wait | None = None
    response: Response | None = None
    meta: JsonObject | None = None

    @classmethod
    def main(cls, items: Sequence[Item]) -> NodeResult:
        return cls(outputs={MAIN: items})


class NodeError(Exception):
    """A node failed. The message is shown to the user as it is.

    `retryable` says whether the node's retry policy may try again (a 503 may
    pass, a bad parameter will not); `retry_after_s` overrides the backoff delay
    (e.g. a Retry-After header). `item_index` names the input item that failed,
    when one did.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
        item_index: int | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.item_index = item_index
        self.description = description


@dataclass(frozen=True, slots=True)
class BinaryRef:
    """A file an item carries, stored in the blob store: `Item.binary[name]` holds
    `to_json()` of one of these."""

    ref: str
    size: int
    mime_type: str = "application/octet-stream"
    file_name: str | None = None

    def to_json(self) -> JsonObject:
        return {"ref": self.ref, "size": self.size, "mime_type": self.mime_type,
                "file_name": self.file_name}  # fmt: skip

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> BinaryRef:
        return cls(ref=str(raw["ref"]), size=int(raw["size"]),
                   mime_type=str(raw.get("mime_type") or "application/octet-stream"),
                   file_name=raw.get("file_name"))  # fmt: skip


class BlobStore(Protocol):
    """Content storage for binaries and large outputs (filesystem, S3-compatible later)."""

    async def put(
        self,
        data: bytes,
        *,
        mime_type: str = "application/octet-stream",
        file_name: str | None = None,
    ) -> BinaryRef: ...

    async def get(self, ref: BinaryRef | str) -> bytes: ...


class CodeMode(StrEnum):
    ALL_ITEMS = "all_items"
    EACH_ITEM = "each_item"


@dataclass(frozen=True, slots=True)
class CodeRequest:
    """User code to run in the sandbox, with the items it sees."""

    code: str
    mode: CodeMode
    items: Sequence[JsonObject]
    timeout_s: float | None = None
    """None: the runner's own limit; a runner never allows more than its limit."""


@dataclass(frozen=True, slots=True)
class CodeResult:
    """What user code returned (`all_items`: a list; `each_item`: one value per item)
    and what it printed."""

    value: Any
    logs: Sequence[str] = ()


class CodeRunner(Protocol):
    """Runs user code isolated from the engine; raises `NodeError` for the code's own
    failures (with the line number) and for limits it hit."""

    async def run(self, request: CodeRequest) -> CodeResult: ...


class NodeContext(Protocol):
    """What the engine gives a node for one activation."""

    @property
    def execution_id(self) -> str: ...
    @property
    def workflow_id(self) -> str | None: ...
    @property
    def node_id(self) -> str: ...
    @property
    def node_name(self) -> str: ...
    @property
    def run_index(self) -> int:
        """0 on the node's first activation in this execution, then 1, 2... (loops)."""
        ...

    @property
    def attempt(self) -> int:
        """1 on the first try of this activation, then 2, 3... on retries."""
        ...

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and replays: `<execution>:<node>:<run>`."""
        ...

    @property
    def on_error(self) -> OnError: ...
    @property
    def inputs(self) -> Sequence[Sequence[Item]]:
        """Items per input; `inputs[k]` is empty when input k delivered nothing."""
        ...

    @property
    def items(self) -> Sequence[Item]:
        """The items of input 0."""
        ...

    @property
    def state(self) -> JsonObject | None:
        """The state this node returned on its previous run in this execution."""
        ...

    @property
    def trigger_input(self) -> Any:
        """The execution's input (what a trigger node turns into items)."""
        ...

    @property
    def raw_parameters(self) -> Mapping[str, Any]:
        """The parameters as written in the document, expressions unevaluated."""
        ...

    def param(
        self,
        name: str,
        item_index: int = 0,
        default: Any = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """The parameter `name`, its expressions evaluated for input item `item_index`.

        Strings inside lists and objects are evaluated too. `extra` adds names to
        the expression scope (http_request binds `response` for pagination).
        Raises `NodeError` naming the parameter when an expression fails.
        """
        ...

    def now(self) -> datetime:
        """The current time (UTC, aware), recorded in the history."""
        ...

    def uuid4(self) -> str:
        """A random UUID, recorded in the history."""
        ...

    def log(self, message: str, **fields: Any) -> None:
        """Add a line to this node run's log."""
        ...

    async def credential(self, slot: str) -> JsonObject:
        """The decrypted fields of the credential the node names in `slot`.

        Raises `NodeError` when the node has none in that slot or it cannot be
        found. Never log or return what this gives.
        """
        ...

    def http(self) -> httpx.AsyncClient:
        """The process's shared HTTP client: pooled, and guarded against SSRF."""
        ...

    async def resolve_host(self, host: str, port: int) -> Sequence[str]:
        """The addresses of `host` this process lets nodes connect to (the SSRF guard's
        policy, as for `http()`), for clients that are not HTTP: databases, SMTP, Redis.

        Connect to one of these rather than to the name, so that a second DNS answer
        cannot point elsewhere. Raises a non-retryable `NodeError` naming the address
        when the policy refuses it, a retryable one when the name does not resolve.
        """
        ...

    @property
    def blobs(self) -> BlobStore:
        """Where binary data and large values live (items keep references)."""
        ...

    @property
    def code(self) -> CodeRunner:
        """The sandbox that runs user code."""
        ...

    @property
    def resume(self) -> JsonObject | None:
        """Set when a node that asked to `Wait` runs again on resumption:
        `{"by": "time" | "webhook", "payload": ...}`; None otherwise."""
        ...

    async def run_workflow(self, reference: str, input: Any, *, wait: bool) -> ChildExecution:
        """Run another workflow as a child execution (linked both ways).

        With `wait`, returns when the child has ended; otherwise as soon as it is
        started. Raises `NodeError` when the workflow cannot be found or the
        nesting limit is reached.
        """
        ...


class Node(ABC):
    """Base class of every node type. Subclasses set the class variables and `run`."""

    type: ClassVar[str]
    display_name: ClassVar[str]
    group: ClassVar[NodeGroup]
    description: ClassVar[str]
    inputs: ClassVar[int] = 1
    """How many inputs the node has; triggers have 0."""
    outputs: ClassVar[tuple[str, ...]] = (MAIN,)
    parameters_schema: ClassVar[JsonObject] = {"type": "object", "properties": {}}
    """JSON Schema (draft 2020-12) of `parameters`; the editor draws its form from it."""
    raw_parameters: ClassVar[frozenset[str]] = frozenset()
    """Parameters whose strings are never evaluated as expressions (e.g. code)."""
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    """Credential slot name → the credential types it accepts (declared with
    `CredentialType`, in the node's module or any other)."""
    lineage: ClassVar[Lineage] = Lineage.ONE_TO_ONE
    emits: ClassVar[str] = ""
    """For triggers and docs: what the items this node emits look like."""

    def input_count(self, parameters: Mapping[str, Any]) -> int:
        """How many inputs the node has with these parameters (merge's may vary)."""
        return self.inputs

    def output_names(self, parameters: Mapping[str, Any]) -> tuple[str, ...]:
        """The outputs for these parameters (switch's depend on its rules)."""
        return self.outputs

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        """Problems the JSON Schema cannot express; empty when the parameters are fine."""
        return []

    @abstractmethod
    async def run(self, ctx: NodeContext) -> NodeResult:
        """Run one activation."""


def error_item(item: Item, index: int, message: str) -> Item:
    """The item that reports a failure: input item `index` plus `{"error": {"message"}}`."""
    return item.derive({**item.json, "error": {"message": message}}, index)


def _failed(ctx: NodeContext, item: Item, index: int, error: NodeError, failed: list[Item]) -> None:
    """Route a failed item to `failed` (on_error: output) or re-raise, tagged with its index."""
    if ctx.on_error is OnError.OUTPUT:
        failed.append(error_item(item, index, error.message))
        return
    if error.item_index is None:
        error.item_index = index
    raise error


def map_items(
    ctx: NodeContext,
    transform: Callable[[Item, int], Item | Sequence[Item] | None],
    *,
    output: str = MAIN,
) -> NodeResult:
    """Apply `transform` to every input item, honouring the node's `on_error` mode.

    `transform(item, index)` returns the output item(s) for one input item (None
    drops it). Items it returns without `paired` are paired with `index`. When
    it raises `NodeError`: with `on_error: output` the item goes to the `error`
    output and the others carry on; otherwise the error propagates (tagged with
    the item index) and the engine applies retries and the `on_error` mode.
    """
    produced: list[Item] = []
    failed: list[Item] = []
    for index, item in enumerate(ctx.items):
        try:
            result = transform(item, index)
        except NodeError as error:
            _failed(ctx, item, index, error, failed)
            continue
        if result is None:
            continue
        for out in (result,) if isinstance(result, Item) else result:
            # An input item returned as it is keeps its identity: the engine pairs it.
            produced.append(out if out.paired is not None else out.derive(out.json, index))
    outputs: dict[str, Sequence[Item]] = {output: produced}
    if failed:
        outputs[ERROR_OUTPUT] = failed
    return NodeResult(outputs=outputs)


async def amap_items(
    ctx: NodeContext, transform: Callable[[Item, int], Awaitable[Sequence[Item]]]
) -> NodeResult:
    """`map_items` for a coroutine: one input item at a time, honouring `on_error`."""
    produced: list[Item] = []
    failed: list[Item] = []
    for index, item in enumerate(ctx.items):
        try:
            produced.extend(await transform(item, index))
        except NodeError as error:
            _failed(ctx, item, index, error, failed)
    outputs: dict[str, Sequence[Item]] = {MAIN: produced}
    if failed:
        outputs[ERROR_OUTPUT] = failed
    return NodeResult(outputs=outputs)


def route_items(
    ctx: NodeContext, choose: Callable[[Item, int], Iterable[str]], outputs: Sequence[str]
) -> NodeResult:
    """Send each input item, unchanged, to the outputs `choose(item, index)` names.

    Errors are handled as in `map_items`: with `on_error: output` the item goes
    to the `error` output, otherwise the `NodeError` propagates.
    """
    routed: dict[str, list[Item]] = {name: [] for name in outputs}
    failed: list[Item] = []
    for index, item in enumerate(ctx.items):
        try:
            targets = list(choose(item, index))
        except NodeError as error:
            _failed(ctx, item, index, error, failed)
            continue
        for name in targets:
            routed.setdefault(name, []).append(item)
    result: dict[str, Sequence[Item]] = dict(routed)
    if failed:
        result[ERROR_OUTPUT] = failed
    return NodeResult(outputs=result)
