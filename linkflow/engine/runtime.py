"""What the executor takes from the outside world: time, randomness, cancellation.

Each is a protocol so tests and replays can supply their own; values that
influence a run are recorded in its history, so a replay does not read them
again.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Cancellation", "Clock", "Entropy", "NeverCancelled", "SystemClock", "SystemEntropy"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, UTC and aware."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class Entropy(Protocol):
    def uuid4(self) -> str: ...

    def random(self) -> float: ...


class Cancellation(Protocol):
    async def requested(self) -> str | None:
        """The reason when cancellation was requested, else None; checked between nodes."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class SystemEntropy:
    def uuid4(self) -> str:
        return str(uuid.uuid4())

    def random(self) -> float:
        return secrets.randbits(53) / (1 << 53)


class NeverCancelled:
    async def requested(self) -> str | None:
        return None
