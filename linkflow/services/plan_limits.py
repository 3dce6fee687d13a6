"""Plan limits as pure decisions: given the limits in force and the usage, may one more pass?

No I/O here: callers read the usage (a count under a lock, a counter in a batch, a Redis
counter) and ask `decide`; a refusal becomes the problem+json `plan_limit` through
`refusal`. The same functions serve the limits checked on the control plane (active
workflows, team members) and those the execution hot path checks (executions per month,
concurrent executions), so every refusal names the limit, its value and the usage alike.

Invariants:
- A limit of None is unlimited; 0 allows nothing.
- `decide(limit, usage, adding)` passes exactly while `usage + adding <= limit`: with a
  limit of 5 and 4 used, one more passes and the sixth does not.
- Effective limits are the plan's, each replaced by an instance admin's override when
  one is set (an override of None lifts the limit).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from linkflow.services.errors import Forbidden, LinkFlowError, RateLimited

__all__ = [
    "CONCURRENCY_RETRY_AFTER_S",
    "Limit",
    "Limits",
    "Verdict",
    "decide",
    "decide_executions",
    "month_of",
    "next_month",
    "over_limit",
    "refusal",
]


class Limit(enum.StrEnum):
    """The limits a plan sets, by the names the API shows."""

    EXECUTIONS_PER_MONTH = "executions_per_month"
    ACTIVE_WORKFLOWS = "active_workflows"
    TEAM_MEMBERS = "team_members"
    MAX_CONCURRENT_EXECUTIONS = "max_concurrent_executions"
    RETENTION_DAYS = "retention_days"


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force for one workspace: each a number, or None for unlimited."""

    values: Mapping[Limit, int | None]

    def of(self, limit: Limit) -> int | None:
        return self.values.get(limit)

    @classmethod
    def effective(cls, plan: Mapping[Limit, int | None], overrides: Mapping[str, object]) -> Limits:
        """The plan's limits with the overrides that name a known limit applied (an
        override that is not a non-negative integer or None is ignored, not trusted)."""
        values = dict(plan)
        for name, value in overrides.items():
            if name not in Limit.__members__.values():
                continue
            if value is None or (
                isinstance(value, int) and not isinstance(value, bool) and value >= 0
            ):
                values[Limit(name)] = value
        return cls(values)

    def as_dict(self) -> dict[str, int | None]:
        return {limit.value: self.values.get(limit) for limit in Limit}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to "may `adding` more pass?" and the facts it was made from."""

    allowed: bool
    limit: Limit
    value: int | None
    usage: int
    retry_after_s: int | None = None
    """For a limit that resets (executions per month): seconds until it does."""


def decide(limits: Limits, limit: Limit, usage: int, *, adding: int = 1) -> Verdict:
    """Whether `adding` more of `limit` fit beside `usage`."""
    value = limits.of(limit)
    allowed = value is None or usage + adding <= value
    return Verdict(allowed=allowed, limit=limit, value=value, usage=usage)


def month_of(moment: datetime) -> datetime:
    """The start of the calendar month (UTC) holding `moment`: the billing period of a
    workspace without a subscription of its own."""
    utc = moment.astimezone(UTC)
    return utc.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(moment: datetime) -> datetime:
    start = month_of(moment)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def decide_executions(
    limits: Limits,
    used_this_period: int,
    *,
    now: datetime,
    period_end: datetime | None = None,
    adding: int = 1,
) -> Verdict:
    """May `adding` more executions start in the billing period ending `period_end` (the
    calendar month by default)? A refusal says when the period, and so the limit, resets."""
    verdict = decide(limits, Limit.EXECUTIONS_PER_MONTH, used_this_period, adding=adding)
    if verdict.allowed:
        return verdict
    end = period_end or next_month(now)
    wait = max(1, int((end - now).total_seconds() + 0.999))
    return Verdict(False, verdict.limit, verdict.value, verdict.usage, retry_after_s=wait)


CONCURRENCY_RETRY_AFTER_S = 2
"""`Retry-After` of a start refused for `max_concurrent_executions`: a slot frees as
soon as one of the workspace's executions ends, so the caller may try again shortly."""


def over_limit(
    limit: Limit, value: int, usage: int, *, now: datetime, period_end: datetime | None = None
) -> Verdict:
    """The refusal of an execution's start that the writer's counter decided (`limit`
    reached, at `usage` of `value`): one that resets says when the period ends, one of
    concurrency to try again shortly."""
    if limit is Limit.EXECUTIONS_PER_MONTH:
        return decide_executions(Limits({limit: value}), usage, now=now,
                                 period_end=period_end)  # fmt: skip
    return Verdict(False, limit, value, usage, retry_after_s=CONCURRENCY_RETRY_AFTER_S)


def refusal(verdict: Verdict) -> LinkFlowError:
    """The error for a refused verdict: 403 `plan_limit` naming the limit, its value and
    the usage; 429 with `Retry-After` when it frees by itself (executions per month at
    the period's end, concurrent executions shortly)."""
    assert not verdict.allowed
    if verdict.limit is Limit.MAX_CONCURRENT_EXECUTIONS:
        detail = (
            f"the workspace's plan allows {verdict.value} executions at once and "
            f"{verdict.usage} are queued or running"
        )
    else:
        detail = (
            f"the workspace's plan allows {verdict.value} {verdict.limit.value.replace('_', ' ')}"
            f" and {verdict.usage} are used"
        )
    extra: dict[str, object] = {
        "limit": verdict.limit.value,
        "value": verdict.value,
        "usage": verdict.usage,
    }
    if verdict.retry_after_s is not None:
        error: LinkFlowError = RateLimited(
            detail, retry_after_s=verdict.retry_after_s, code="plan_limit"
        )
        error.extra.update(extra)
        return error
    return Forbidden(detail, code="plan_limit", extra=extra)
