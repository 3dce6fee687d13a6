"""The database history: replay after a crash at every event, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from linkflow.engine import Event, EventType, HistoryConflict
from linkflow.services.history import DatabaseHistory
from linkflow.store import Database
from tests.integration._rows import new_execution, new_workspace
from tests.unit.engine._nodes import Calls
from tests.unit.engine._support import run
from tests.unit.engine.test_replay import INPUT, durable_workflow, outcome, resume_after_crash


async def test_resuming_from_the_database_after_every_event_matches_a_clean_run(
    database: Database,
) -> None:
    """Stop after N stored events for every N, resume from the table, compare results."""
    workspace = await new_workspace(database)
    Calls.reset()
    reference = await run(durable_workflow(), INPUT)
    expected = outcome(reference)
    for limit in range(1, len(reference.events)):
        Calls.reset()
        execution = await new_execution(database, workspace)
        history = DatabaseHistory(database, execution.id)
        result, _ = await resume_after_crash(history, limit)
        assert outcome(result) == expected, f"diverged after a crash at event {limit + 1}"
        stored = await history.read()
        assert [event.seq for event in stored] == list(range(1, len(stored) + 1))


async def test_a_second_writer_of_the_same_seq_gets_a_conflict(database: Database) -> None:
    """Two workers appending event n: the second is refused, the first stays."""
    workspace = await new_workspace(database)
    execution = await new_execution(database, workspace)
    first, second = DatabaseHistory(database, execution.id), DatabaseHistory(database, execution.id)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    await first.append(Event(1, EventType.EXECUTION_STARTED, None, {"input": 1}, when))
    with pytest.raises(HistoryConflict):
        await second.append(Event(1, EventType.EXECUTION_STARTED, None, {"input": 2}, when))
    events = await second.read()
    assert [(e.seq, e.data) for e in events] == [(1, {"input": 1})]


async def test_event_timestamps_come_back_exactly_as_recorded(database: Database) -> None:
    """The engine replays with recorded times: microseconds and zone survive the table."""
    workspace = await new_workspace(database)
    execution = await new_execution(database, workspace)
    history = DatabaseHistory(database, execution.id)
    when = datetime(2026, 3, 29, 1, 59, 59, 123456, tzinfo=UTC)
    await history.append(Event(1, EventType.NODE_SKIPPED, "n", {}, when))
    (event,) = await history.read()
    assert event.timestamp == when
    assert event.timestamp.tzinfo is not None
