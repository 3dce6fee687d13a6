"""The public names of linkflow.queue: pinned, so none vanishes unnoticed."""

from __future__ import annotations

import linkflow.queue


def test_public_names_are_pinned() -> None:
    """`__all__` lists exactly these names, and each one is importable."""
    assert sorted(linkflow.queue.__all__) == sorted([
        "PRIORITY_ORDER", "DeadLetter", "Delivery", "Job", "JobResult", "JobType",
        "LocalQueue", "Priority", "Queue", "QueueClosed", "backoff_s",
    ])  # fmt: skip
    for name in linkflow.queue.__all__:
        assert getattr(linkflow.queue, name) is not None
