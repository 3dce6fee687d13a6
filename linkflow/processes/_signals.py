"""How a process hears that it should stop."""

from __future__ import annotations

import asyncio
import signal

__all__ = ["stop_requested"]


def stop_requested() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT (the process then shuts down in order;
    a second signal changes nothing, SIGKILL is what stops it at once)."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, event.set)
    return event
