"""The retry delay policy: exponential backoff, capped (ARCHITECTURE.md, "Queue").

A pure function of the attempt number, so the worker that nacks a delivery and
a test that checks the schedule compute the same delay. It adds no jitter:
a delay is reproducible, and a caller that needs to spread a burst of retries
adds its own.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_BACKOFF_BASE_S", "DEFAULT_BACKOFF_CAP_S", "backoff_s"]

DEFAULT_BACKOFF_BASE_S: Final = 1.0
"""The wait after a first failed delivery: long enough for a blip to pass, short
enough that a webhook caller waiting on the result barely notices."""

DEFAULT_BACKOFF_CAP_S: Final = 300.0
"""No retry waits longer than five minutes, reached from the 10th attempt on
(2**8 = 256 s after the 9th, 512 s capped after the 10th): a job stuck behind
a longer outage should reach its dead letter rather than sleep for hours. With
the default `max_attempts` of 3 the waits are 1 s and 2 s."""

_MAX_EXPONENT: Final = 1000
"""2.0**1000 is still a finite float (2.0**1024 overflows), far past any cap."""


def backoff_s(
    attempt: int, *, base_s: float = DEFAULT_BACKOFF_BASE_S, cap_s: float = DEFAULT_BACKOFF_CAP_S
) -> float:
    """Seconds to wait before redelivering a job whose delivery number `attempt` failed.

    `base_s * 2**(attempt - 1)`, at most `cap_s`: 1, 2, 4, 8 ... 256, 300, 300 ...
    with the defaults. Used as ``queue.nack(d, delay_s=backoff_s(d.attempt))``.
    Raises `ValueError` for an attempt below 1 or a negative base or cap.
    """
    if attempt < 1:
        raise ValueError(f"attempt is counted from 1, got {attempt}")
    if base_s < 0 or cap_s < 0:
        raise ValueError(f"base_s and cap_s must not be negative, got {base_s} and {cap_s}")
    return min(base_s * 2.0 ** min(attempt - 1, _MAX_EXPONENT), cap_s)
