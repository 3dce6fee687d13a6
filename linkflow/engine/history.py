"""The history protocol and its in-memory implementation.

An execution's history is append-only and dense: the event with `seq` n is
appended only after n-1, and a second append of the same `seq` fails with
`HistoryConflict`. That is what keeps two workers from both recording a step:
the one that lost its lease (or raced) gets the conflict and stops.
The database implementations live in `linkflow.services` (`execution_events`):
one appends each event in its own transaction, the other pipelines appends
into the process's group commit and waits for durability only at `flush`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from linkflow.engine.events import Event

__all__ = ["History", "HistoryConflict", "InMemoryHistory"]


class HistoryConflict(Exception):
    """Another writer already appended an event with this sequence number."""


class History(Protocol):
    """One execution's event history."""

    async def read(self) -> Sequence[Event]:
        """Every event so far, in `seq` order."""
        ...

    async def append(self, event: Event) -> None:
        """Append `event`, in order.

        An implementation may return before the event is durable (pipelining
        appends into group commits); `flush` then waits for durability. A taken
        `seq` raises `HistoryConflict`, from `append` or from the next `flush`.
        """
        ...

    async def flush(self) -> None:
        """Return once every appended event is durable; `HistoryConflict` if one was refused."""
        ...


class InMemoryHistory:
    """History kept in a list: for `linkflow run` and tests. Not durable."""

    def __init__(self, events: Sequence[Event] = ()) -> None:
        self.events: list[Event] = list(events)

    async def read(self) -> Sequence[Event]:
        return list(self.events)

    async def flush(self) -> None:
        """Nothing to wait for: appends are immediate."""

    async def append(self, event: Event) -> None:
        if event.seq != len(self.events) + 1:
            raise HistoryConflict(f"event {event.seq} appended after {len(self.events)}")
        self.events.append(event)
