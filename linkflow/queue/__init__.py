"""The job queue: the seed's job envelope, the Queue protocol, retry policy, implementations."""

from linkflow.queue.delivery import DeadLetter, Delivery
from linkflow.queue.job import PRIORITY_ORDER, Job, JobResult, JobType, Priority
from linkflow.queue.local import LocalQueue
from linkflow.queue.protocol import Queue, QueueClosed
from linkflow.queue.retry import backoff_s

__all__ = [
    "PRIORITY_ORDER",
    "DeadLetter",
    "Delivery",
    "Job",
    "JobResult",
    "JobType",
    "LocalQueue",
    "Priority",
    "Queue",
    "QueueClosed",
    "backoff_s",
]
