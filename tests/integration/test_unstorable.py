"""One execution's value the database cannot take fails that execution alone.

On SQLite and PostgreSQL, through the group-commit writer production uses (and on
SQLite through the writer process `serve` uses): a batch holding another tenant's
unstorable event is split by execution; the other execution's writes are stored,
the poisoned one ends `failed` with the reason (history closed by
`execution.failed`, lease gone), and its worker is refused from then on. The engine
and the services refuse such values before they reach the writer (tests/e2e); this
is the writer's own guard, for whatever gets past them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from linkflow.engine import Event, EventType, HistoryConflict
from linkflow.services.writer import GroupCommitWriter, WriterHistory
from linkflow.store import Database, Execution, ExecutionLease
from tests.integration.test_execution_plane import SIMPLE, Plane, build_plane, start

POISONS = {
    "a lone surrogate": {"text": "\ud800"},
    "an integer beyond 64 bits": {"n": 2**64},
    "a key that is not text": {1: "one"},
}


async def fresh_lease(plane: Plane, execution_id: uuid.UUID) -> str:
    lease = plane.service.fresh[execution_id].lease
    assert lease is not None
    return lease


async def two_executions(plane: Plane) -> tuple[uuid.UUID, str, uuid.UUID, str]:
    """Two queued executions with this process's leases, no worker running them."""
    victim = await start(plane, SIMPLE, {"n": 1})
    other = await start(plane, SIMPLE, {"n": 2})
    return victim, await fresh_lease(plane, victim), other, await fresh_lease(plane, other)


async def assert_failed_alone(
    plane: Plane, victim: uuid.UUID, other: uuid.UUID, poisoned: object, fine: object
) -> None:
    await fine  # type: ignore[misc]
    with pytest.raises(HistoryConflict):
        await poisoned  # type: ignore[misc]
    async with plane.database.session() as session:
        failed = await session.get(Execution, victim)
        running = await session.get(Execution, other)
        assert await session.get(ExecutionLease, victim) is None
        assert await session.get(ExecutionLease, other) is not None
    assert failed is not None
    assert running is not None
    assert failed.status.value == "failed"
    assert failed.error is not None
    assert failed.error["message"].startswith("the execution's data could not be stored: ")
    assert running.status.value == "running"
    victim_history = await WriterHistory(plane.writer, victim).read()
    assert [e.type for e in victim_history] == [EventType.EXECUTION_QUEUED,
                                                EventType.EXECUTION_FAILED]  # fmt: skip
    other_history = await WriterHistory(plane.writer, other).read()
    assert [e.type for e in other_history] == [EventType.EXECUTION_QUEUED,
                                               EventType.EXECUTION_STARTED]  # fmt: skip


def started(seq: int, data: dict[object, object]) -> Event:
    return Event(seq, EventType.EXECUTION_STARTED, None, data, datetime.now(UTC))  # type: ignore[arg-type]


@pytest.mark.parametrize("poison", list(POISONS))
async def test_an_unstorable_event_fails_its_execution_and_no_other(
    database: Database, writer: GroupCommitWriter, poison: str
) -> None:
    """The two events share one batch (queued back to back); only the poisoned one's
    execution pays for it."""
    plane = build_plane(database, writer)
    victim, victim_lease, other, other_lease = await two_executions(plane)
    poisoned = writer.append_nowait(victim, started(2, POISONS[poison]), lease=victim_lease)
    fine = writer.append_nowait(other, started(2, {}), lease=other_lease)
    await assert_failed_alone(plane, victim, other, poisoned, fine)
    # The poisoned run's worker is refused from now on, whatever it writes next.
    later = writer.append_nowait(victim, started(3, {}), lease=victim_lease)
    with pytest.raises(HistoryConflict):
        await later


async def test_a_batch_of_one_unstorable_write_fails_its_execution(
    database: Database, writer: GroupCommitWriter
) -> None:
    """Alone in its batch, the write is still isolated: the database takes an empty write,
    so the data is to blame, not the database."""
    plane = build_plane(database, writer)
    victim, victim_lease, other, other_lease = await two_executions(plane)
    poisoned = writer.append_nowait(victim, started(2, POISONS["a lone surrogate"]),
                                    lease=victim_lease)  # fmt: skip
    with pytest.raises(HistoryConflict):
        await poisoned
    fine = writer.append_nowait(other, started(2, {}), lease=other_lease)
    await assert_failed_alone(plane, victim, other, poisoned, fine)


async def test_the_writer_process_isolates_an_unstorable_event(
    database: Database, process_writer: GroupCommitWriter
) -> None:
    plane = build_plane(database, process_writer)
    victim, victim_lease, other, other_lease = await two_executions(plane)
    poisoned = process_writer.append_nowait(victim, started(2, POISONS["a lone surrogate"]),
                                            lease=victim_lease)  # fmt: skip
    fine = process_writer.append_nowait(other, started(2, {}), lease=other_lease)
    await assert_failed_alone(plane, victim, other, poisoned, fine)
