"""The job queue: the seed's job envelope, the Queue protocol, and implementations."""

from linkflow.queue.job import Job, JobResult, JobType, Priority
from linkflow.queue.local import LocalQueue, QueueClosed
from linkflow.queue.protocol import Queue

__all__ = ["Job", "JobResult", "JobType", "LocalQueue", "Priority", "Queue", "QueueClosed"]
