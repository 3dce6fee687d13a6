"""The job envelope and result, in the seed's message format (CONTRACT.md section 4).

Invariant: a `Job` is immutable. What changes while a job travels through a
queue (how many times it was handed out, when, to whom) is the queue's business
and rides on the `Delivery` (`linkflow.queue.delivery`), never on the job. The
seed envelope still carries an `attempts` field: `Job.to_json(attempts=...)`
writes it, and `Job.from_json` ignores it, because the queue that reads a job
counts its deliveries itself.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = ["PRIORITY_ORDER", "Job", "JobResult", "JobType", "Priority"]


class JobType(StrEnum):
    WORKFLOW_EXECUTION = "workflow_execution"
    NOTIFICATION = "notification"
    WEBHOOK_DELIVERY = "webhook_delivery"


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


PRIORITY_ORDER = (Priority.HIGH, Priority.NORMAL, Priority.LOW)
"""Workers take high before normal before low."""


def _new_id() -> str:
    # From `random`, not `uuid4()` (a system call each): a job id needs to be
    # unique, not unpredictable, and one is made per webhook call.
    return str(uuid.UUID(int=random.getrandbits(128)))


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Job:
    """`{"id", "type", "queue", "payload", "attempts", "max_attempts", "timeout", "created_at"}`.

    Frozen field by field; the `payload` dict is shared by every delivery of
    the job, so treat it as read-only. It takes no part in the hash (a dict is
    not hashable), so jobs and deliveries can key a dict or fill a set.
    """

    type: JobType
    payload: dict[str, Any] = field(hash=False)
    queue: Priority = Priority.NORMAL
    id: str = field(default_factory=_new_id)
    max_attempts: int = 3
    """Deliveries the job may have; the one numbered `max_attempts` is its last."""
    timeout: float = 3600.0
    """Seconds one delivery may run (the seed's name, hence no `_s`)."""
    created_at: datetime = field(default_factory=_now)

    def to_json(self, attempts: int = 0) -> dict[str, Any]:
        """The seed envelope, with `attempts` (deliveries so far) as given."""
        return {
            "id": self.id, "type": self.type.value, "queue": self.queue.value,
            "payload": self.payload, "attempts": attempts,
            "max_attempts": self.max_attempts, "timeout": self.timeout,
            "created_at": self.created_at.isoformat(),
        }  # fmt: skip

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Job:
        """Read a seed envelope; `attempts` is ignored, and may be absent.

        A `created_at` without an offset is read as UTC.
        """
        created_at = datetime.fromisoformat(raw["created_at"])
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        return cls(
            type=JobType(raw["type"]), payload=dict(raw["payload"]), queue=Priority(raw["queue"]),
            id=str(raw["id"]), max_attempts=int(raw["max_attempts"]),
            timeout=float(raw["timeout"]), created_at=created_at,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class JobResult:
    """`{"job_id", "status", "result", "duration_ms", "completed_at"}`."""

    job_id: str
    status: str
    result: dict[str, Any] | None
    duration_ms: int
    completed_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "status": self.status, "result": self.result,
                "duration_ms": self.duration_ms,
                "completed_at": self.completed_at.isoformat()}  # fmt: skip
