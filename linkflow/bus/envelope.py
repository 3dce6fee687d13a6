"""The one shape of a live event on the bus, as the contract's `/ws` and SSE carry it:
`{"event", "channel", "data", "timestamp"}`, where an execution event's data is the
event's own data with `execution_id`, `seq` and `node_id`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["event_data", "message", "stamp"]


def event_data(
    execution_id: str, seq: int, node_id: str | None, data: dict[str, Any]
) -> dict[str, Any]:
    """The `data` of an execution event's message."""
    return {"execution_id": execution_id, "seq": seq, "node_id": node_id, **data}


def message(channel: str, kind: str, data: dict[str, Any], timestamp: str) -> dict[str, Any]:
    """The envelope of one message on `channel`; `timestamp` in ISO 8601 (`stamp`)."""
    return {"event": kind, "channel": channel, "data": data, "timestamp": timestamp}


def stamp(at: datetime) -> str:
    return at.isoformat()
