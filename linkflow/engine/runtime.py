"""What the executor takes from the outside world: time, randomness, cancellation.

Each is a protocol so tests and replays can supply their own; values that
influence a run are recorded in its history, so a replay does not read them
again.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from linkflow.nodes.sdk import AddressGuard, BlobStore, ChildExecution, CodeRunner, NodeError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Cancellation",
    "Clock",
    "CredentialResolver",
    "Entropy",
    "NeverCancelled",
    "NodeServices",
    "ParentLink",
    "SecretScrubber",
    "SubWorkflowRunner",
    "SystemClock",
    "SystemEntropy",
    "scrub_node_error",
]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, UTC and aware."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class Entropy(Protocol):
    def uuid4(self) -> str: ...

    def random(self) -> float: ...


class Cancellation(Protocol):
    async def requested(self) -> str | None:
        """The reason when cancellation was requested, else None; checked between nodes."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class SystemEntropy:
    def uuid4(self) -> str:
        return str(uuid.uuid4())

    def random(self) -> float:
        return secrets.randbits(53) / (1 << 53)


class NeverCancelled:
    async def requested(self) -> str | None:
        return None


class CredentialResolver(Protocol):
    async def resolve(self, reference: str) -> dict[str, Any]:
        """The decrypted fields of the credential a node names (by id or name).

        Raises `LookupError` when there is no such credential for this execution.
        """
        ...


class SecretScrubber(Protocol):
    def scrub(self, text: str) -> str:
        """`text` without the secret values the current execution's nodes were given.

        A node's error is stored where every viewer reads it, and a remote server
        echoing its request (a credential in a header or the URL) puts the secret
        there; the executor passes every node error through this before storing it.
        """
        ...


def scrub_node_error(error: NodeError, scrubber: SecretScrubber | None) -> NodeError:
    """`error` with its message and description scrubbed (itself when nothing changes)."""
    if scrubber is None:
        return error
    message = scrubber.scrub(error.message)
    description = None if error.description is None else scrubber.scrub(error.description)
    if message == error.message and description == error.description:
        return error
    return NodeError(
        message, retryable=error.retryable, retry_after_s=error.retry_after_s,
        item_index=error.item_index, description=description,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ParentLink:
    """The execution (and node) that started a child execution."""

    execution_id: str
    workflow_id: str | None
    node_id: str | None
    depth: int
    """The parent's nesting depth; its child runs at depth + 1."""

    def to_json(self) -> dict[str, Any]:
        return {"execution_id": self.execution_id, "workflow_id": self.workflow_id,
                "node_id": self.node_id}  # fmt: skip


class SubWorkflowRunner(Protocol):
    """Starts child executions: sub-workflows and error workflows."""

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
        """Run workflow `reference` (an id, or a file path for `linkflow run`).

        `trigger` names the trigger type to start from (`error` for error
        workflows); `idempotency_key` is stable across replays, so a parent that
        runs the same node again finds the child it already started. Raises
        `LookupError` for an unknown workflow.

        With `wait`, a runner may return a child that has not ended yet (a server
        runs it on any worker): the node's run then waits for it, releasing its
        worker, and runs again once it ended, finding it by its key.
        """
        ...


@dataclass(frozen=True, slots=True)
class NodeServices:
    """What nodes reach the world through; each is optional, and a node asking for
    a missing one fails with a clear error. Built by the process's wiring."""

    http: Callable[[], httpx.AsyncClient] | None = None
    addresses: AddressGuard | None = None
    """Vets the hosts of connections that are not HTTP (`NodeContext.resolve_host`)."""
    credentials: CredentialResolver | None = None
    blobs: BlobStore | None = None
    code: CodeRunner | None = None
    workflows: SubWorkflowRunner | None = None
    scrubber: SecretScrubber | None = None
    """Applied to every node error before it is stored (see `SecretScrubber`)."""
    blob_threshold_bytes: int = 1024 * 1024
    """Node outputs larger than this (as JSON) are kept in `blobs`, not in the event."""
