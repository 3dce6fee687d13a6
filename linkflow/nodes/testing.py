"""Test helpers for node authors: run a node without an engine, a server or a database.

    from linkflow.nodes.testing import FakeContext, items, run_node

    ctx = FakeContext(items=items({"name": "Ada"}), parameters={"greeting": "Hello"})
    result = await run_node(MyNode, ctx)
    assert result.outputs["main"][0].json == {"name": "Ada", "message": "Hello Ada"}

- `FakeContext` is a `NodeContext` whose clock is fixed (`FIXED_NOW`, moved only
  by `advance`), whose UUIDs count up (`00000000-0000-4000-8000-000000000001`...),
  whose credentials are a dict, whose blobs live in memory and whose log is a
  list. Parameters are taken as they are: expressions are the engine's, so a
  value that must differ per item is written `per_item(lambda item, index: ...)`.
- `run_node` checks the parameters as the engine does before a run (the
  node's JSON Schema, then its `check`) and runs one activation.
- `RecordingTransport` records every HTTP exchange a node makes through an
  `httpx.AsyncClient` (to a real server: a loopback one in tests), and
  `ReplayTransport` plays recorded exchanges back, in order, refusing any
  request that differs from the recording (`UnexpectedRequest`).
- Non-HTTP clients (databases, SMTP) get their addresses from
  `FakeContext.resolve_host`: by default every address is allowed; pass
  `addresses=` an `AddressGuard` (e.g. `linkflow.security.ssrf.HostGuard`) to
  test refusals.

Nothing here is used by the engine: it is a test double of the engine, for the
node's side of the contract only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
from jsonschema import Draft202012Validator

from linkflow.nodes.sdk import (
    BinaryRef,
    BlobStore,
    ChildExecution,
    CodeRunner,
    Item,
    JsonObject,
    Node,
    NodeError,
    NodeResult,
    OnError,
)

__all__ = [
    "FIXED_NOW",
    "Exchange",
    "FakeContext",
    "MemoryBlobStore",
    "OpenAddresses",
    "RecordingTransport",
    "ReplayTransport",
    "UnexpectedRequest",
    "items",
    "per_item",
    "run_node",
]

FIXED_NOW: Final = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
"""What `FakeContext.now()` answers until `advance` moves it."""


@dataclass(frozen=True, slots=True)
class _PerItem:
    compute: Callable[[Item | None, int], Any]


def per_item(compute: Callable[[Item | None, int], Any]) -> Any:
    """A parameter whose value is `compute(item, index)` for each input item (the role
    an expression plays under the engine). `item` is None past the last input item."""
    return _PerItem(compute)


def items(*jsons: JsonObject, binary: Mapping[str, JsonObject] | None = None) -> list[Item]:
    """Input items with these JSON objects (all carrying `binary`, when given)."""
    return [Item(json=dict(data), binary=binary) for data in jsons]


class MemoryBlobStore:
    """A `BlobStore` in a dict; refs are content hashes, as the real stores' are."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def put(
        self,
        data: bytes,
        *,
        mime_type: str = "application/octet-stream",
        file_name: str | None = None,
    ) -> BinaryRef:
        ref = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[ref] = data
        return BinaryRef(ref=ref, size=len(data), mime_type=mime_type, file_name=file_name)

    async def get(self, ref: BinaryRef | str) -> bytes:
        key = ref.ref if isinstance(ref, BinaryRef) else ref
        try:
            return self.blobs[key]
        except KeyError:
            raise NodeError(f"there is no blob {key}") from None


class OpenAddresses:
    """An `AddressGuard` that allows every address (the system resolver's answers)."""

    async def resolve(self, host: str, port: int, *, timeout_s: float) -> Sequence[str]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as error:
            raise NodeError(f"cannot resolve {host!r}: {error}", retryable=True) from None
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class FakeContext:
    """A `NodeContext` for one activation, built from plain values (see the module docstring)."""

    def __init__(
        self,
        *,
        items: Sequence[Item] = (),
        inputs: Sequence[Sequence[Item]] | None = None,
        parameters: Mapping[str, Any] | None = None,
        credentials: Mapping[str, JsonObject] | None = None,
        http: httpx.AsyncClient | None = None,
        addresses: Any = None,
        blobs: BlobStore | None = None,
        code: CodeRunner | None = None,
        workflows: Callable[[str, Any, bool], ChildExecution] | None = None,
        now: datetime = FIXED_NOW,
        state: JsonObject | None = None,
        resume: JsonObject | None = None,
        trigger_input: Any = None,
        on_error: OnError = OnError.STOP,
        node_id: str = "node",
        execution_id: str = "execution-1",
        workflow_id: str | None = "workflow-1",
        run_index: int = 0,
        attempt: int = 1,
    ) -> None:
        """`credentials` maps slot → the credential's fields (with `type`, as the engine
        gives them); `addresses` is an `AddressGuard` (default `OpenAddresses`)."""
        self._inputs = [list(items)] if inputs is None else [list(batch) for batch in inputs]
        self._parameters = dict(parameters or {})
        self._credentials = dict(credentials or {})
        self._http = http
        self._addresses = addresses if addresses is not None else OpenAddresses()
        self.blob_store: BlobStore = blobs if blobs is not None else MemoryBlobStore()
        self._code = code
        self._workflows = workflows
        self._now = now
        self._state = state
        self._resume = resume
        self._trigger_input = trigger_input
        self._on_error = on_error
        self._node_id = node_id
        self._execution_id = execution_id
        self._workflow_id = workflow_id
        self._run_index = run_index
        self._attempt = attempt
        self._uuids = 0
        self.logs: list[JsonObject] = []
        """What the node logged: `{"message": ..., **fields}` per line."""

    @property
    def parameter_names(self) -> Sequence[str]:
        """The parameters set, per item or not."""
        return list(self._parameters)

    def advance(self, delta: timedelta) -> None:
        """Move the fixed clock forward."""
        self._now += delta

    # -- NodeContext -------------------------------------------------------------

    @property
    def execution_id(self) -> str:
        return self._execution_id

    @property
    def workflow_id(self) -> str | None:
        return self._workflow_id

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def node_name(self) -> str:
        return self._node_id

    @property
    def run_index(self) -> int:
        return self._run_index

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def idempotency_key(self) -> str:
        return f"{self._execution_id}:{self._node_id}:{self._run_index}"

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
        return self._state

    @property
    def trigger_input(self) -> Any:
        return self._trigger_input

    @property
    def raw_parameters(self) -> Mapping[str, Any]:
        return {name: value for name, value in self._parameters.items()
                if not isinstance(value, _PerItem)}  # fmt: skip

    def param(
        self,
        name: str,
        item_index: int = 0,
        default: Any = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        value = self._parameters.get(name, default)
        if isinstance(value, _PerItem):
            batch = self.items
            return value.compute(batch[item_index] if item_index < len(batch) else None,
                                 item_index)  # fmt: skip
        return value

    def now(self) -> datetime:
        return self._now

    def uuid4(self) -> str:
        self._uuids += 1
        return f"00000000-0000-4000-8000-{self._uuids:012d}"

    def log(self, message: str, **fields: Any) -> None:
        self.logs.append({"message": message, **fields})

    async def credential(self, slot: str) -> JsonObject:
        found = self._credentials.get(slot)
        if found is None:
            raise NodeError(f"the node has no credential in slot {slot!r}")
        return dict(found)

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise NodeError("HTTP is not available in this process")
        return self._http

    async def resolve_host(self, host: str, port: int) -> Sequence[str]:
        resolved: Sequence[str] = await self._addresses.resolve(host, port, timeout_s=10.0)
        return resolved

    @property
    def blobs(self) -> BlobStore:
        return self.blob_store

    @property
    def code(self) -> CodeRunner:
        if self._code is None:
            raise NodeError("running code is not available in this process")
        return self._code

    @property
    def resume(self) -> JsonObject | None:
        return self._resume

    async def run_workflow(self, reference: str, input: Any, *, wait: bool) -> ChildExecution:
        if self._workflows is None:
            raise NodeError("sub-workflows are not available in this process")
        return self._workflows(reference, input, wait)


def _schema_problems(node: Node, ctx: FakeContext) -> list[str]:
    # Per-item values are checked as the first item's, as the engine checks an
    # expression's value when it is evaluated.
    literal = {name: ctx.param(name) for name in ctx.parameter_names}
    validator = Draft202012Validator(node.parameters_schema)
    problems = [
        f"parameters{''.join(f'.{part}' for part in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(literal)
    ]
    return problems or node.check(literal)


async def run_node(node: Node | type[Node], ctx: FakeContext) -> NodeResult:
    """Check `ctx`'s parameters as the engine would (the schema, then `node.check`), then
    run one activation. Raises `ValueError` listing the problems of bad parameters."""
    instance = node() if isinstance(node, type) else node
    problems = _schema_problems(instance, ctx)
    if problems:
        raise ValueError("; ".join(problems))
    return await instance.run(ctx)


# --- recorded HTTP -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and the response it got."""

    method: str
    url: str
    request_headers: Mapping[str, str]
    request_body: bytes
    status: int
    response_headers: Mapping[str, str] = field(default_factory=dict)
    response_body: bytes = b""

    def to_json(self) -> JsonObject:
        return {
            "method": self.method, "url": self.url,
            "request_headers": dict(self.request_headers),
            "request_body": self.request_body.decode("latin-1"),
            "status": self.status, "response_headers": dict(self.response_headers),
            "response_body": self.response_body.decode("latin-1"),
        }  # fmt: skip

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Exchange:
        return cls(
            method=raw["method"], url=raw["url"], request_headers=raw["request_headers"],
            request_body=raw["request_body"].encode("latin-1"), status=raw["status"],
            response_headers=raw["response_headers"],
            response_body=raw["response_body"].encode("latin-1"),
        )  # fmt: skip


# Headers that differ between a recording and a replay without changing the request.
_VOLATILE: Final = frozenset({"content-length", "user-agent", "accept-encoding", "connection"})


class RecordingTransport(httpx.AsyncBaseTransport):
    """Sends through `inner` (a real transport) and keeps every exchange in `exchanges`."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        self.exchanges.append(Exchange(
            method=request.method, url=str(request.url),
            request_headers={k: v for k, v in request.headers.items() if k not in _VOLATILE},
            request_body=body, status=response.status_code,
            response_headers={k: v for k, v in response.headers.items()
                              if k.lower() not in {"content-encoding", "transfer-encoding"}},
            response_body=content,
        ))  # fmt: skip
        return httpx.Response(response.status_code, headers=response.headers, content=content,
                              request=request)  # fmt: skip

    def save(self, path: Path) -> None:
        """Write the exchanges as a JSON cassette that `ReplayTransport.load` reads."""
        path.write_text(json.dumps([e.to_json() for e in self.exchanges], indent=2))

    async def aclose(self) -> None:
        await self.inner.aclose()


class UnexpectedRequest(AssertionError):
    """A replayed node sent a request the recording does not have (next in order)."""


class ReplayTransport(httpx.AsyncBaseTransport):
    """Answers with recorded exchanges, in order; a request whose method, URL, headers
    or body differ from the next recorded one raises `UnexpectedRequest`."""

    def __init__(self, exchanges: Iterable[Exchange]) -> None:
        self.remaining = list(exchanges)
        self.requests: list[httpx.Request] = []

    @classmethod
    def load(cls, path: Path) -> ReplayTransport:
        return cls(Exchange.from_json(raw) for raw in json.loads(path.read_text()))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests.append(request)
        if not self.remaining:
            raise UnexpectedRequest(f"{request.method} {request.url}: nothing more was recorded")
        expected = self.remaining.pop(0)
        headers = {k: v for k, v in request.headers.items() if k not in _VOLATILE}
        if (request.method, str(request.url)) != (expected.method, expected.url):
            raise UnexpectedRequest(f"{request.method} {request.url}: the recording has "
                                    f"{expected.method} {expected.url} next")  # fmt: skip
        if headers != dict(expected.request_headers) or body != expected.request_body:
            raise UnexpectedRequest(f"{request.method} {request.url}: its headers or body "
                                    "differ from the recording")  # fmt: skip
        return httpx.Response(expected.status, headers=expected.response_headers,
                              content=expected.response_body, request=request)  # fmt: skip
