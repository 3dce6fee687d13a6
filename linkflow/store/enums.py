"""The closed sets of values that status-like columns may hold.

Each enum is stored as its string value in a ``VARCHAR`` column guarded by a
``CHECK`` constraint (see `linkflow.store.types.StrEnumType`), never as a
native PostgreSQL enum: adding a value is then a one-line migration that
rewrites the check, identical on SQLite and PostgreSQL.

Values are part of the public contract (they appear in API responses and in
migrations), so a value is never renamed, only added.
"""

from __future__ import annotations

import enum

__all__ = [
    "DeliveryStatus",
    "ExecutionStatus",
    "MemberRole",
    "MemberStatus",
    "NodeExecutionStatus",
    "Priority",
    "ScheduleStatus",
    "SubscriptionStatus",
    "TriggerType",
    "WebhookResponseMode",
    "WorkflowStatus",
]


class MemberRole(enum.StrEnum):
    """A workspace member's role; RBAC rules live in `linkflow.security`."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class MemberStatus(enum.StrEnum):
    """`invited` rows have no `user_id` yet, only an invite e-mail and token."""

    INVITED = "invited"
    ACTIVE = "active"


class WorkflowStatus(enum.StrEnum):
    """Only `active` workflows have live triggers (webhooks, schedules)."""

    DRAFT = "draft"
    ACTIVE = "active"
    INACTIVE = "inactive"


class ExecutionStatus(enum.StrEnum):
    """An execution's lifecycle; the allowed transitions live in the services layer."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


class NodeExecutionStatus(enum.StrEnum):
    """The outcome of one run of one node inside an execution."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    WAITING = "waiting"


class TriggerType(enum.StrEnum):
    """What started an execution."""

    MANUAL = "manual"
    WEBHOOK = "webhook"
    SCHEDULE = "schedule"
    API = "api"
    RETRY = "retry"
    ERROR = "error"
    SUBWORKFLOW = "subworkflow"


class Priority(enum.StrEnum):
    """Queue priority; workers read `high` before `normal` before `low`."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class ScheduleStatus(enum.StrEnum):
    """Only `active` schedules are considered by the scheduler's due query."""

    ACTIVE = "active"
    PAUSED = "paused"


class WebhookResponseMode(enum.StrEnum):
    """How a webhook call is answered (see the public contract, section 3)."""

    IMMEDIATELY = "immediately"
    LAST_NODE = "last_node"
    RESPOND_NODE = "respond_node"


class SubscriptionStatus(enum.StrEnum):
    """Billing state; a workspace has at most one subscription in a live state."""

    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @classmethod
    def live(cls) -> tuple[SubscriptionStatus, ...]:
        """The states in which the subscription's plan applies."""
        return (cls.TRIALING, cls.ACTIVE, cls.PAST_DUE)


class DeliveryStatus(enum.StrEnum):
    """An outgoing webhook delivery: `pending` until its first attempt, `retrying` between
    failed attempts, then `succeeded` (a 2xx answer) or `dead` (every attempt failed)."""

    PENDING = "pending"
    DELIVERING = "delivering"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
