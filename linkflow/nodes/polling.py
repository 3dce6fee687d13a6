"""Polling triggers: a trigger node that asks a service what is new since its cursor.

A polling trigger (new rows of an SQL query, new objects under an S3 prefix) is a
`PollingTrigger`: besides `run`, it implements `poll`, which the scheduler calls
every `interval_s` seconds of an active workflow, outside any execution, with the
cursor it kept from the previous poll. `poll` returns the new items and the cursor
that follows them; the scheduler stores that cursor in the same transaction that
creates the execution carrying the items (`linkflow.scheduler.polling` states the
policy). `run` then turns the execution's input back into the items.

Rules for `poll`:
- It reads and returns; it changes nothing in the service. If the process dies
  after a poll and before its transaction, the next poll sees the same items.
- The cursor it returns is JSON and is handed back as it was; `None` is given only
  to the first poll after activation (or after the node's parameters changed).
- Its parameters are the node's literal parameters: no execution exists yet, so
  expressions cannot be evaluated (`check` refuses them).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final, Protocol

from linkflow.nodes.builtin._common import is_expression
from linkflow.nodes.sdk import Item, JsonObject, Node, NodeContext, NodeGroup, NodeResult

__all__ = ["INTERVAL_SCHEMA", "Poll", "PollContext", "PollingTrigger", "literal_problems"]

INTERVAL_SCHEMA: Final[JsonObject] = {
    "type": "integer", "minimum": 1, "default": 60,
    "description": "Poll every this many seconds.",
}  # fmt: skip


class PollContext(Protocol):
    """What a poll may use: its credentials, the guarded way out, and the time.
    A `NodeContext` is one, so `run` may call `poll` too."""

    async def credential(self, slot: str) -> JsonObject:
        """The decrypted fields of the credential the node names in `slot`."""
        ...

    async def resolve_host(self, host: str, port: int) -> Sequence[str]:
        """The vetted addresses of `host` (the SSRF guard's policy)."""
        ...

    def now(self) -> datetime:
        """The current time (UTC, aware)."""
        ...


@dataclass(frozen=True, slots=True)
class Poll:
    """What one poll found: `items` (JSON objects, oldest first; none: no execution)
    and the `cursor` to hand to the next poll."""

    items: Sequence[JsonObject]
    cursor: Any


class PollingTrigger(Node):
    """A trigger the scheduler polls; its executions' input is `{"items": [...],
    "polled_at": ...}`, which `run` emits as one item per entry."""

    group = NodeGroup.TRIGGER
    inputs = 0
    literal_parameters: ClassVar[frozenset[str]] = frozenset()
    """Parameters `poll` reads, which must therefore be written out (no expressions)."""

    @abstractmethod
    async def poll(self, ctx: PollContext, parameters: Mapping[str, Any], cursor: Any) -> Poll:
        """The items after `cursor` (None: the first poll) and the cursor after them."""

    async def sample(self, ctx: NodeContext) -> Sequence[JsonObject]:
        """What a run by hand emits (no poll fired it): by default, nothing."""
        return ()

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        return literal_problems(parameters, self.literal_parameters)

    async def run(self, ctx: NodeContext) -> NodeResult:
        fired = ctx.trigger_input
        if isinstance(fired, dict) and isinstance(fired.get("items"), list):
            entries = [entry for entry in fired["items"] if isinstance(entry, dict)]
        else:
            entries = list(await self.sample(ctx))
        return NodeResult.main([Item(json=dict(entry), paired=()) for entry in entries])


def literal_problems(parameters: Mapping[str, Any], names: frozenset[str]) -> list[str]:
    """One problem per parameter of `names` that is an expression."""
    return [
        f"{name} must be written out, not an expression (it is read when polling, "
        "before any execution exists)"
        for name in sorted(names)
        if is_expression(parameters.get(name))
    ]
