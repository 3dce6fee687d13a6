"""`/ws` against a real `linkflow serve` and a real WebSocket client: a workspace's
events in order, an execution's history after a `seq` then its live events with nothing
missing or repeated, another workspace refused, no token closed with 4401."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e._serve import Client, Serve, register, workflow

DEADLINE_S = 30.0

THREE_STEPS = {
    "name": "three",
    "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "one", "type": "set", "parameters": {"fields": {"a": 1}}},
        {"id": "two", "type": "set", "parameters": {"fields": {"b": 2}}},
    ],
    "connections": [{"from": "start", "to": "one"}, {"from": "one", "to": "two"}],
}


def ws_url(server: Serve, token: str | None) -> str:
    url = server.url.replace("http://", "ws://") + "/ws"
    return f"{url}?token={token}" if token else url


async def frame(ws: ClientConnection) -> dict[str, Any]:
    raw = await ws.recv(decode=True)
    return dict(orjson.loads(raw))


async def send(ws: ClientConnection, payload: dict[str, Any]) -> None:
    await ws.send(orjson.dumps(payload).decode())


async def until_end(ws: ClientConnection) -> list[dict[str, Any]]:
    events = []
    while True:
        got = await frame(ws)
        events.append(got)
        if got.get("event") in ("execution.completed", "execution.failed"):
            return events


async def test_live_events_over_a_websocket(server: Serve) -> None:
    client = Client(server)
    register(client)
    workspace = client.ok("GET", "/api/v1/workspaces/current")["id"]
    flow = workflow(client, THREE_STEPS)
    async with connect(ws_url(server, client.token), open_timeout=DEADLINE_S) as ws:
        await send(ws, {"type": "ping"})
        assert await frame(ws) == {"type": "pong"}
        await send(ws, {"type": "subscribe", "channel": f"workspace.{workspace}"})
        assert await frame(ws) == {"type": "subscribed", "channel": f"workspace.{workspace}"}
        run = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
        events = await until_end(ws)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "execution.started"
    assert kinds[-1] == "execution.completed"
    assert kinds.count("node.completed") == 3
    assert {e["channel"] for e in events} == {f"workspace.{workspace}"}
    assert {e["data"]["execution_id"] for e in events} == {run["id"]}
    seqs = [e["data"]["seq"] for e in events]
    assert seqs == sorted(seqs)

    # The history after seq 3, then the live rest: every later event once, in order.
    logs = client.listed(f"/api/v1/executions/{run['id']}/logs")
    stored = logs["data"] if isinstance(logs, dict) else logs
    last = max(e["seq"] for e in stored)
    async with connect(ws_url(server, client.token), open_timeout=DEADLINE_S) as ws:
        channel = f"execution.{run['id']}"
        await send(ws, {"type": "subscribe", "channel": channel, "after_seq": 3})
        assert await frame(ws) == {"type": "subscribed", "channel": channel}
        replayed = [await frame(ws) for _ in range(last - 3)]
    assert [e["seq"] for e in replayed] == list(range(4, last + 1))
    assert replayed[-1]["event"] == "execution.completed"


async def test_a_channel_of_another_workspace_is_refused(server: Serve) -> None:
    client = Client(server)
    register(client)
    async with connect(ws_url(server, client.token), open_timeout=DEADLINE_S) as ws:
        for channel in (f"workspace.{uuid.uuid4()}", f"execution.{uuid.uuid4()}"):
            await send(ws, {"type": "subscribe", "channel": channel})
            refused = await frame(ws)
            assert (refused["type"], refused["code"]) == ("error", "forbidden")
        await send(ws, {"type": "subscribe", "channel": "somewhere"})
        assert (await frame(ws))["code"] == "invalid_channel"
        await send(ws, {"type": "dance"})
        assert (await frame(ws))["code"] == "invalid_message"
        await send(ws, {"type": "ping"})
        assert await frame(ws) == {"type": "pong"}  # still open after the refusals


@pytest.mark.parametrize("token", [None, "not-a-token"])
async def test_without_a_valid_token_the_socket_is_closed_with_4401(
    server: Serve, token: str | None
) -> None:
    async with connect(ws_url(server, token), open_timeout=DEADLINE_S) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def read_until_closed(ws: ClientConnection) -> None:
    while True:
        await ws.recv()


async def test_a_client_that_does_not_read_is_closed_with_4408_and_the_server_goes_on(
    server: Serve,
) -> None:
    """100 executions with 200 kB outputs (40 MB of events) while the client reads nothing:
    once the socket's buffers and the connection's outbox (8 MB) are full, the server
    closes it with 4408 instead of buffering on; the API keeps answering."""
    client = Client(server)
    register(client)
    workspace = client.ok("GET", "/api/v1/workspaces/current")["id"]
    flow = workflow(client, {"name": "big", "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "big", "type": "set", "parameters": {"fields": {"blob": "{{ 'x' * 200000 }}"}}},
    ], "connections": [{"from": "start", "to": "big"}]})  # fmt: skip
    # Without compression: 'x' * 200000 deflates to nothing, and the socket's buffers
    # would never fill.
    async with connect(ws_url(server, client.token), open_timeout=DEADLINE_S,
                       max_size=None, compression=None) as ws:  # fmt: skip
        await send(ws, {"type": "subscribe", "channel": f"workspace.{workspace}"})
        assert (await frame(ws))["type"] == "subscribed"
        # The synchronous calls block this event loop: the client reads nothing meanwhile.
        for _ in range(100):
            client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
        with pytest.raises(ConnectionClosed) as closed:
            await read_until_closed(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4408
    assert client.ok("GET", "/api/v1/workspaces/current")["id"] == workspace
