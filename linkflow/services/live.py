"""Live events for a client: which channels a caller may follow, and the history an
execution channel replays before its live events (the `/ws` protocol of CONTRACT.md).

Channels are `execution.<id>` (readable by whoever may read that execution) and
`workspace.<id>` (by the workspace's members with `executions:read`). A channel
the caller may not read is refused exactly like one that does not exist
(`Forbidden`, code `forbidden`): its existence is not revealed either.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from linkflow.bus.envelope import event_data, message, stamp
from linkflow.security.rbac import Permission
from linkflow.services.authentication import resolve_workspace
from linkflow.services.context import Principal
from linkflow.services.errors import Forbidden, Invalid, LinkFlowError
from linkflow.store import Database, EventRepository, Execution

__all__ = ["Channel", "LiveEvents"]


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    execution_id: uuid.UUID | None
    """Set for an execution channel: its events have a `seq` and a history."""


class LiveEvents:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def authorize(self, principal: Principal, name: str) -> Channel:
        """The channel `name`, when `principal` may read it; `Invalid` for a name that is
        no channel, `Forbidden` for one they may not read (or that does not exist)."""
        kind, _, raw_id = name.partition(".")
        try:
            target = uuid.UUID(raw_id)
        except ValueError:
            raise Invalid("a channel is execution.<id> or workspace.<id>",
                          code="invalid_channel") from None  # fmt: skip
        if kind == "workspace":
            await self._may_read(principal, target)
            return Channel(f"workspace.{target}", None)
        if kind != "execution":
            raise Invalid("a channel is execution.<id> or workspace.<id>", code="invalid_channel")
        async with self.database.session() as session:
            workspace = await session.scalar(
                select(Execution.workspace_id).where(Execution.id == target)
            )
        if workspace is None:
            raise _refused()
        await self._may_read(principal, workspace)
        return Channel(f"execution.{target}", target)

    async def _may_read(self, principal: Principal, workspace_id: uuid.UUID) -> None:
        try:
            access = await resolve_workspace(self.database, principal, workspace_id)
            access.require(Permission.EXECUTIONS_READ)
        except LinkFlowError:
            raise _refused() from None

    async def history_after(self, channel: Channel, after_seq: int) -> list[dict[str, Any]]:
        """The stored events of an execution channel with `seq` above `after_seq`, as the
        envelopes the bus carries (`bus.envelope`)."""
        assert channel.execution_id is not None
        async with self.database.session() as session:
            events = await EventRepository(session).read(channel.execution_id, after_seq=after_seq)
        execution = str(channel.execution_id)
        return [
            message(channel.name, e.type, event_data(execution, e.seq, e.node_id, e.data),
                    stamp(e.created_at))
            for e in events
        ]  # fmt: skip


def _refused() -> Forbidden:
    return Forbidden("you may not follow this channel", code="forbidden")
