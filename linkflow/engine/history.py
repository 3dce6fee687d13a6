"""The history protocol and its in-memory implementation.

An execution's history is append-only and dense: the event with `seq` n is
appended only after n-1, and a second append of the same `seq` fails with
`HistoryConflict`. That is what keeps two workers from both recording a step:
the one that lost its lease (or raced) gets the conflict and stops.
The database implementation lives with the store (`execution_events`).
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
        """Durably append `event`; raise `HistoryConflict` if its `seq` is taken."""
        ...


class InMemoryHistory:
    """History kept in a list: for `linkflow run` and tests. Not durable."""

    def __init__(self, events: Sequence[Event] = ()) -> None:
        self.events: list[Event] = list(events)

    async def read(self) -> Sequence[Event]:
        return list(self.events)

    async def append(self, event: Event) -> None:
        if event.seq != len(self.events) + 1:
            raise HistoryConflict(f"event {event.seq} appended after {len(self.events)}")
        self.events.append(event)
