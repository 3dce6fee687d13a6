"""The job envelope (seed format) and the immutability of what a queue hands out."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, Final

import pytest

from linkflow.queue import DeadLetter, Delivery, Job, JobType, Priority
from tests.unit.queue._support import make_job


class TestEnvelope:
    SEED: Final[dict[str, Any]] = {
        "id": "3f2b8a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
        "type": "workflow_execution",
        "queue": "high",
        "payload": {"execution_id": "0b7c2f9e-5d43-4b8e-9a51-7f0e6c1d2a3b"},
        "attempts": 2,
        "max_attempts": 5,
        "timeout": 300.0,
        "created_at": "2024-05-01T12:30:00+00:00",
    }

    def test_envelope_round_trip(self) -> None:
        """A seed envelope reads into a Job and writes back the same, `attempts` as given."""
        job = Job.from_json(self.SEED)
        assert job == Job(
            type=JobType.WORKFLOW_EXECUTION, payload=self.SEED["payload"], queue=Priority.HIGH,
            id=self.SEED["id"], max_attempts=5, timeout=300.0,
            created_at=datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        )  # fmt: skip
        assert job.to_json(attempts=2) == self.SEED
        assert job.to_json() == self.SEED | {"attempts": 0}

    def test_from_json_ignores_attempts_and_reads_a_naive_time_as_utc(self) -> None:
        """The queue counts deliveries, so the envelope's count (even absent) is not read."""
        raw = {k: v for k, v in self.SEED.items() if k != "attempts"}
        naive = Job.from_json(raw | {"created_at": "2024-05-01T12:30:00"})
        assert naive == Job.from_json(self.SEED | {"attempts": 99})
        assert naive.created_at.tzinfo is UTC

    def test_a_new_job_has_a_unique_id_and_an_aware_creation_time(self) -> None:
        """Defaults: normal priority, 3 attempts, an hour, a fresh id, now in UTC."""
        first, second = make_job(), make_job()
        assert first.id != second.id
        assert first.created_at.utcoffset() is not None
        assert (first.queue, first.max_attempts, first.timeout) == (Priority.NORMAL, 3, 3600.0)

    def test_job_is_immutable(self) -> None:
        """No field of a Job can be reassigned, and it has no `attempts` to count with."""
        job = make_job()
        with pytest.raises(dataclasses.FrozenInstanceError):
            job.max_attempts = 9  # type: ignore[misc]
        assert not hasattr(job, "attempts")
        assert hash(job) == hash(dataclasses.replace(job))

    def test_delivery_and_dead_letter_are_immutable(self) -> None:
        """What the queue hands out cannot be edited into another delivery."""
        delivery = Delivery(make_job(), 1, "r-1", 0.0)
        dead = DeadLetter(make_job(), 1, "why", datetime.now(UTC))
        with pytest.raises(dataclasses.FrozenInstanceError):
            delivery.attempt = 2  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            dead.reason = "other"  # type: ignore[misc]
