"""Every Redis key the job queue uses, and why it exists. One place, so that an operator
(or a `redis-cli --scan`) can tell LinkFlow's keys apart and what each holds.

All keys start with the queue's prefix (`linkflow` unless configured), so several
deployments may share one Redis, each with its own prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from linkflow.queue.job import PRIORITY_ORDER, Priority

__all__ = ["GROUP", "QueueKeys"]

GROUP = "workers"
"""The consumer group every worker of a deployment reads through: each entry of a
stream goes to one of them, and stays pending (in flight) until it is settled."""


@dataclass(frozen=True, slots=True)
class QueueKeys:
    prefix: str = "linkflow"

    def stream(self, priority: Priority) -> str:
        """`<prefix>:queue:<priority>`: a stream of ready jobs (fields `job`, the seed
        envelope as JSON, and `attempt`), one per priority so that reads can prefer
        high to normal to low. Entries are deleted when settled."""
        return f"{self.prefix}:queue:{priority.value}"

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(self.stream(priority) for priority in PRIORITY_ORDER)

    @property
    def delayed(self) -> str:
        """`<prefix>:queue:delayed`: a sorted set of jobs waiting for a later time (a delay
        at enqueue, a retry's backoff), scored by their due time in Redis milliseconds;
        moved to their stream when due."""
        return f"{self.prefix}:queue:delayed"

    @property
    def dead(self) -> str:
        """`<prefix>:queue:dead`: a stream of dead letters (job, attempts, reason, time),
        capped at `MAX_DEAD_LETTERS` entries (the oldest go first)."""
        return f"{self.prefix}:queue:dead"
