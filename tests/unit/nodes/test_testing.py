"""`linkflow.nodes.testing`, the helpers node authors test with, used on built-in nodes:
a fake context with a fixed clock, parameter checks as the engine makes them, and HTTP
recorded against a real loopback server then replayed without it."""

from __future__ import annotations

import hmac
import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

import linkflow.nodes.sdk as sdk
from linkflow.nodes.builtin.crypto import Crypto
from linkflow.nodes.builtin.datetime_ import DateTime
from linkflow.nodes.builtin.http_request import HttpRequest
from linkflow.nodes.sdk import NodeError, OnError
from linkflow.nodes.testing import (
    FIXED_NOW,
    FakeContext,
    RecordingTransport,
    ReplayTransport,
    UnexpectedRequest,
    items,
    per_item,
    run_node,
)
from tests._http_server import Recorded, Reply, serve


class TestFakeContext:
    def test_it_offers_every_member_of_the_node_context(self) -> None:
        """A node written against NodeContext finds everything on the fake."""
        members = {name for name in dir(sdk.NodeContext) if not name.startswith("_")}
        assert members <= set(dir(FakeContext))

    def test_time_stands_still_until_advanced_and_uuids_count(self) -> None:
        """now() is FIXED_NOW; advance moves it; uuid4() is 1, 2, 3..."""
        ctx = FakeContext()
        assert ctx.now() == FIXED_NOW
        ctx.advance(timedelta(hours=1))
        assert ctx.now() == FIXED_NOW + timedelta(hours=1)
        assert [ctx.uuid4(), ctx.uuid4()] == [
            "00000000-0000-4000-8000-000000000001",
            "00000000-0000-4000-8000-000000000002",
        ]

    async def test_a_missing_credential_or_service_is_a_node_error(self) -> None:
        """As under the engine: a clear NodeError, not an AttributeError."""
        ctx = FakeContext()
        with pytest.raises(NodeError, match="no credential in slot 'auth'"):
            await ctx.credential("auth")
        with pytest.raises(NodeError, match="HTTP is not available"):
            ctx.http()


class TestBuiltinNodes:
    async def test_crypto_hmacs_each_item_with_a_per_item_value(self) -> None:
        """per_item plays the expression's role: one value per item."""
        ctx = FakeContext(
            items=items({"msg": "a"}, {"msg": "b"}),
            parameters={"operation": "hmac", "secret": "k", "value": per_item(
                lambda item, _: item.json["msg"] if item else None)},
        )  # fmt: skip
        result = await run_node(Crypto, ctx)
        digests = [item.json["data"] for item in result.outputs["main"]]
        assert digests == [hmac.new(b"k", msg, "sha256").hexdigest() for msg in (b"a", b"b")]

    async def test_crypto_uuids_come_from_the_context(self) -> None:
        """The uuid operation records the context's UUIDs, so a replay sees the same."""
        ctx = FakeContext(items=items({}, {}), parameters={"operation": "uuid"})
        result = await run_node(Crypto, ctx)
        assert [i.json["data"] for i in result.outputs["main"]] == [
            "00000000-0000-4000-8000-000000000001",
            "00000000-0000-4000-8000-000000000002",
        ]

    async def test_datetime_now_is_the_fixed_clock(self) -> None:
        """The datetime node reads the context's clock."""
        ctx = FakeContext(items=items({}), parameters={"operation": "now"})
        result = await run_node(DateTime, ctx)
        assert result.outputs["main"][0].json == {"datetime": "2026-01-01T12:00:00+00:00"}

    async def test_parameters_are_checked_as_the_engine_checks_them(self) -> None:
        """A value outside the schema, and a parameter the node's check requires."""
        with pytest.raises(ValueError, match="'nope' is not one of"):
            await run_node(Crypto, FakeContext(parameters={"operation": "nope"}))
        with pytest.raises(ValueError, match="secret is required when operation is hmac"):
            await run_node(Crypto, FakeContext(parameters={"operation": "hmac", "value": "x"}))

    async def test_on_error_output_routes_the_failed_item(self) -> None:
        """base64_decode of junk fails that item only."""
        ctx = FakeContext(
            items=items({"v": "aGk="}, {"v": "%%%"}), on_error=OnError.OUTPUT,
            parameters={"operation": "base64_decode",
                        "value": per_item(lambda item, _: item.json["v"] if item else None)},
        )  # fmt: skip
        result = await run_node(Crypto, ctx)
        assert [i.json["data"] for i in result.outputs["main"]] == ["hi"]
        assert "not valid base64" in result.outputs["error"][0].json["error"]["message"]


def _greet(request: Recorded) -> Reply:
    body = json.loads(request.body)
    return Reply.json({"greeting": f"hello {body['name']}", "auth": request.headers["x-key"]})


class TestRecordedHttp:
    async def test_an_exchange_recorded_against_a_real_server_replays_without_it(
        self, tmp_path: Path
    ) -> None:
        """http_request posts to a loopback server through a RecordingTransport; the
        cassette then answers the same run with the server gone."""
        cassette = tmp_path / "greet.json"
        with serve({"/greet": _greet}) as server:
            parameters = {"method": "POST", "url": server.url("/greet"), "body": {"name": "Ada"},
                          "auth": "auth"}  # fmt: skip
            recorder = RecordingTransport()
            async with httpx.AsyncClient(transport=recorder) as client:
                live = await run_node(HttpRequest, _http_ctx(parameters, client))
            recorder.save(cassette)
        assert live.outputs["main"][0].json == {"greeting": "hello Ada", "auth": "k-1"}
        assert [(e.method, e.status) for e in recorder.exchanges] == [("POST", 200)]

        replay = ReplayTransport.load(cassette)
        async with httpx.AsyncClient(transport=replay) as client:
            again = await run_node(HttpRequest, _http_ctx(parameters, client))
        assert again.outputs["main"][0].json == live.outputs["main"][0].json
        assert replay.remaining == []

    async def test_a_request_the_recording_does_not_have_is_refused(self, tmp_path: Path) -> None:
        """A different body than recorded: UnexpectedRequest, not a silent answer."""
        with serve({"/greet": _greet}) as server:
            parameters = {"method": "POST", "url": server.url("/greet"), "body": {"name": "Ada"},
                          "auth": "auth"}  # fmt: skip
            recorder = RecordingTransport()
            async with httpx.AsyncClient(transport=recorder) as client:
                await run_node(HttpRequest, _http_ctx(parameters, client))
        replay = ReplayTransport(recorder.exchanges)
        changed = {**parameters, "body": {"name": "Bob"}}
        async with httpx.AsyncClient(transport=replay) as client:
            with pytest.raises(UnexpectedRequest, match="headers or body differ"):
                await run_node(HttpRequest, _http_ctx(changed, client))


def _http_ctx(parameters: dict[str, object], client: httpx.AsyncClient) -> FakeContext:
    return FakeContext(
        items=items({}),
        parameters=parameters,
        http=client,
        credentials={"auth": {"type": "header", "name": "X-Key", "value": "k-1"}},
    )
