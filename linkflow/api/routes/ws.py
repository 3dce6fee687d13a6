"""`/ws`: live events over a WebSocket, in CONTRACT.md's wire protocol.

Authenticate with `?token=<access token or API key>` or the Authorization header
(else close 4401). Client frames: `subscribe` (`channel`, optional `after_seq`),
`unsubscribe`, `ping`. Server frames: `subscribed`, event envelopes (with `seq`
beside `event` on execution channels), `pong`, `error` (the connection stays).

An execution channel subscribed with `after_seq` first gets every stored event
after it, then the live ones, none twice: the bus subscription is made before the
history is read, and live events at or below the last `seq` sent are skipped.
Each connection has a bounded outbox (`OUTBOX_LIMIT` frames and `OUTBOX_BYTES`
encoded, whichever comes first: one frame can hold a node's whole output): a client
that does not keep up is closed with 4408, the server never buffers without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final, cast

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from linkflow.api.container import Container
from linkflow.api.idempotency import bearer_credential
from linkflow.api.plane import Plane
from linkflow.services.context import Principal
from linkflow.services.errors import LinkFlowError
from linkflow.services.live import Channel

__all__ = ["OUTBOX_LIMIT", "router"]

OUTBOX_LIMIT: Final = 1000
"""Frames one connection may have waiting to be sent before it is closed (4408)."""
OUTBOX_BYTES: Final = 8 * 1024 * 1024
"""Encoded bytes one connection may have waiting, likewise: a thousand frames of a
megabyte each would be a gigabyte per slow client."""
UNAUTHENTICATED: Final = 4401
TOO_SLOW: Final = 4408

router = APIRouter()


@router.websocket("/ws")
async def live_events(websocket: WebSocket) -> None:
    container = cast(Container, websocket.app.state.container)
    plane = cast(Plane, websocket.app.state.plane)
    token = websocket.query_params.get("token") or bearer_credential(websocket.scope)
    principal = None
    if token:
        with contextlib.suppress(LinkFlowError):
            principal = await container.authenticator.authenticate(token)
    await websocket.accept()  # a close before the accept would be a bare HTTP 403
    if principal is None:
        await websocket.close(UNAUTHENTICATED, "send an access token or API key")
        return
    with container.metrics.websockets.track_inprogress():
        await _Session(websocket, plane, principal).run()


class _Session:
    """One connection: its subscriptions, each a task relaying a bus subscription into
    the connection's bounded outbox, and the task that sends the outbox."""

    def __init__(self, websocket: WebSocket, plane: Plane, principal: Principal) -> None:
        self.websocket = websocket
        self.plane = plane
        self.principal = principal
        self.outbox: asyncio.Queue[str] = asyncio.Queue(OUTBOX_LIMIT)
        self.queued_bytes = 0
        self.relays: dict[str, asyncio.Task[None]] = {}
        self.too_slow = asyncio.Event()

    def send(self, frame: dict[str, Any]) -> None:
        text = orjson.dumps(frame).decode()
        self.queued_bytes += len(text)
        try:
            if self.queued_bytes > OUTBOX_BYTES:
                raise asyncio.QueueFull
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            self.too_slow.set()

    async def run(self) -> None:
        writer = asyncio.create_task(self._write())
        reader = asyncio.create_task(self._read())
        slow = asyncio.create_task(self.too_slow.wait())
        try:
            await asyncio.wait({reader, writer, slow}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            tasks = [reader, writer, slow, *self.relays.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.too_slow.is_set():
            with contextlib.suppress(Exception):  # the client may be gone already
                await self.websocket.close(TOO_SLOW, "the client does not keep up")

    async def _write(self) -> None:
        while True:
            text = await self.outbox.get()
            await self.websocket.send_text(text)
            self.queued_bytes -= len(text)

    async def _read(self) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                raw = await self.websocket.receive_text()
                try:
                    frame = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    frame = None
                await self._handle(frame)

    async def _handle(self, frame: Any) -> None:
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "ping":
            self.send({"type": "pong"})
            return
        channel = frame.get("channel") if isinstance(frame, dict) else None
        if kind not in ("subscribe", "unsubscribe") or not isinstance(channel, str):
            self._error("invalid_message", "send subscribe, unsubscribe (with a channel) or ping")
            return
        if kind == "unsubscribe":
            relay = self.relays.pop(channel, None)
            if relay is not None:
                relay.cancel()
            return
        after = frame.get("after_seq")
        if after is not None and (not isinstance(after, int) or isinstance(after, bool)):
            self._error("invalid_message", "after_seq must be a whole number")
            return
        try:
            found = await self.plane.live.authorize(self.principal, channel)
        except LinkFlowError as error:
            self._error(error.code, error.detail)
            return
        if found.name in self.relays:
            self.send({"type": "subscribed", "channel": found.name})
            return
        self.relays[found.name] = asyncio.create_task(self._relay(found, after))

    def _error(self, code: str, detail: str) -> None:
        self.send({"type": "error", "code": code, "detail": detail})

    async def _relay(self, channel: Channel, after: int | None) -> None:
        async with self.plane.bus.subscribe(channel.name) as live:
            self.send({"type": "subscribed", "channel": channel.name})
            last = after
            if channel.execution_id is not None and after is not None:
                for message in await self.plane.live.history_after(channel, after):
                    last = message["data"]["seq"]
                    self.send({**message, "seq": last})
            while True:
                message = await live.get()
                if channel.execution_id is not None:
                    seq = message["data"].get("seq")
                    if last is not None and isinstance(seq, int) and seq <= last:
                        continue  # sent from the history already
                    last = seq if isinstance(seq, int) else last
                    message = {**message, "seq": seq}
                self.send(message)
