"""The job envelope and result, in the seed's message format (CONTRACT.md section 4)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = ["Job", "JobResult", "JobType", "Priority"]


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


@dataclass(slots=True)
class Job:
    """`{"id", "type", "queue", "payload", "attempts", "max_attempts", "timeout", "created_at"}`."""

    type: JobType
    payload: dict[str, Any]
    queue: Priority = Priority.NORMAL
    id: str = field(default_factory=lambda: str(uuid.UUID(int=random.getrandbits(128))))
    attempts: int = 0
    max_attempts: int = 3
    timeout: float = 3600.0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": self.type.value, "queue": self.queue.value,
            "payload": self.payload, "attempts": self.attempts,
            "max_attempts": self.max_attempts, "timeout": self.timeout,
            "created_at": self.created_at.isoformat(),
        }  # fmt: skip

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Job:
        return cls(
            type=JobType(raw["type"]), payload=dict(raw["payload"]), queue=Priority(raw["queue"]),
            id=str(raw["id"]), attempts=int(raw["attempts"]),
            max_attempts=int(raw["max_attempts"]), timeout=float(raw["timeout"]),
            created_at=datetime.fromisoformat(raw["created_at"]),
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
