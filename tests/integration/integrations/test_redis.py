"""The redis node and credential against the session's real redis-server."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from linkflow.nodes.integrations.redis import REDIS_CREDENTIAL, Redis
from linkflow.nodes.sdk import NodeError, OnError
from linkflow.nodes.testing import FakeContext, items, per_item, run_node
from linkflow.security.ssrf import AddressPolicy, HostGuard
from tests._services import RedisServer, free_port

BY_KEY = per_item(lambda item, _: item.json["k"] if item else None)

DB = 7
"""A database of its own: the queue tests flush database 0 before each test."""
USER, PASSWORD = "nodes", "redis-node-pa55"


@pytest.fixture(scope="module")
def acl_user(redis_server: RedisServer) -> Iterator[None]:
    """An ACL user with a password on the session server (the default user stays open)."""
    with redis.Redis(port=redis_server.port) as admin:
        admin.acl_setuser(
            USER,
            enabled=True,
            passwords=[f"+{PASSWORD}"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
        yield
        admin.acl_deluser(USER)


@pytest.fixture
async def server(redis_server: RedisServer, acl_user: None) -> AsyncIterator[aioredis.Redis]:
    """A client of database `DB`, flushed."""
    client = aioredis.Redis(port=redis_server.port, db=DB)
    await client.flushdb()
    yield client
    await client.aclose()


def credential(server: RedisServer, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "redis",
        "host": "127.0.0.1",
        "port": server.port,
        "database": DB,
        "username": USER,
        "password": PASSWORD,
        "tls": False,
        **overrides,
    }


async def run(
    redis_server: RedisServer, parameters: dict[str, Any], *inputs: dict[str, Any], **ctx: Any
) -> list[dict[str, Any]]:
    context = FakeContext(
        items=items(*(inputs or ({},))),
        parameters=parameters,
        credentials={"redis": ctx.pop("cred", credential(redis_server))},
        **ctx,
    )
    result = await run_node(Redis, context)
    return [item.json for item in result.outputs["main"]]


class TestOperations:
    async def test_set_then_get_round_trips_text_and_json(
        self, redis_server: RedisServer, server: aioredis.Redis
    ) -> None:
        """set writes strings as they are and other values as JSON; get reads them back."""
        out = await run(
            redis_server,
            {
                "operation": "set",
                "key": BY_KEY,
                "ttl_s": 60,
                "value": per_item(lambda i, _: i.json["v"]),
            },
            {"k": "a", "v": "plain"},
            {"k": "b", "v": {"n": 1}},
        )
        assert [o["value"] for o in out] == [True, True]
        assert await server.get("a") == b"plain"
        assert await server.get("b") == b'{"n":1}'
        assert 0 < await server.ttl("a") <= 60
        got = await run(
            redis_server,
            {"operation": "get", "key": "b", "parse_json": True, "output_field": "found"},
            {"id": 1},
        )
        assert got == [{"id": 1, "found": {"n": 1}}]

    async def test_get_reads_hashes_lists_and_sets_whole_and_null_when_absent(
        self, redis_server: RedisServer, server: aioredis.Redis
    ) -> None:
        """The key's type decides the read: HGETALL, LRANGE, SMEMBERS (sorted)."""
        await server.hset("h", mapping={"x": "1", "y": "2"})
        await server.rpush("l", "1", "2", "3")
        await server.sadd("s", "b", "a")
        keys = ["h", "l", "s", "missing"]
        out = await run(
            redis_server, {"operation": "get", "key": BY_KEY}, *({"k": key} for key in keys)
        )
        assert [o["value"] for o in out] == [
            {"x": "1", "y": "2"},
            ["1", "2", "3"],
            ["a", "b"],
            None,
        ]

    async def test_incr_counts_per_item_and_delete_reports_how_many(
        self, redis_server: RedisServer, server: aioredis.Redis
    ) -> None:
        """Three items incr by 5: 5, 10, 15; delete then says 1, and 0 the second time."""
        out = await run(redis_server, {"operation": "incr", "key": "hits", "by": 5}, {}, {}, {})
        assert [o["value"] for o in out] == [5, 10, 15]
        gone = await run(redis_server, {"operation": "delete", "key": "hits"}, {}, {})
        assert [o["value"] for o in gone] == [1, 0]

    async def test_push_and_pop_at_either_end(
        self, redis_server: RedisServer, server: aioredis.Redis
    ) -> None:
        """push appends at the tail by default; pop takes from the tail or, tail false, the head."""
        lengths = await run(
            redis_server,
            {"operation": "push", "key": "q", "value": per_item(lambda i, _: i.json)},
            {"n": 1},
            {"n": 2},
            {"n": 3},
        )
        assert [o["value"] for o in lengths] == [1, 2, 3]
        assert await server.lrange("q", 0, -1) == [b'{"n":1}', b'{"n":2}', b'{"n":3}']
        tail = await run(redis_server, {"operation": "pop", "key": "q", "parse_json": True}, {})
        head = await run(redis_server, {"operation": "pop", "key": "q", "tail": False}, {})
        assert (tail[0]["value"], head[0]["value"]) == ({"n": 3}, '{"n":1}')

    async def test_publish_reaches_a_subscriber_and_counts_it(
        self, redis_server: RedisServer, server: aioredis.Redis
    ) -> None:
        """The subscriber gets the message as JSON; the node reports 1 receiver."""
        pubsub = server.pubsub()
        await pubsub.subscribe("news")
        assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"  # type: ignore[index]
        out = await run(
            redis_server, {"operation": "publish", "channel": "news", "message": {"hello": "world"}}
        )
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        await pubsub.aclose()
        assert out[0]["value"] == 1
        assert message is not None
        assert message["data"] == b'{"hello":"world"}'


class TestErrors:
    async def test_a_wrong_password_is_a_non_retryable_error_without_the_password(
        self, redis_server: RedisServer, server: aioredis.Redis
    ) -> None:
        """The message names the operation and says the login was refused."""
        with pytest.raises(NodeError) as caught:
            await run(
                redis_server,
                {"operation": "get", "key": "k"},
                cred=credential(redis_server, password="wrong-password"),
            )
        assert "redis get" in caught.value.message
        assert "refused the login" in caught.value.message
        assert "wrong-password" not in caught.value.message
        assert caught.value.retryable is False

    async def test_a_closed_port_is_a_retryable_connection_error(
        self, redis_server: RedisServer
    ) -> None:
        """Nothing listens: retryable, naming the operation."""
        with pytest.raises(NodeError) as caught:
            await run(
                redis_server,
                {"operation": "set", "key": "k", "value": "v"},
                cred=credential(redis_server, port=free_port()),
            )
        assert caught.value.message.startswith("redis set on 'k': connection failed")
        assert caught.value.retryable is True

    async def test_a_wrong_type_fails_the_item_and_on_error_output_routes_it(
        self, redis_server: RedisServer, server: aioredis.Redis
    ) -> None:
        """incr on a list is Redis's WRONGTYPE; with on_error output the other item goes on."""
        await server.rpush("list", "x")
        context = FakeContext(
            items=items({"k": "list"}, {"k": "counter"}),
            on_error=OnError.OUTPUT,
            parameters={"operation": "incr", "key": BY_KEY},
            credentials={"redis": credential(redis_server)},
        )
        result = await run_node(Redis, context)
        assert [i.json["value"] for i in result.outputs["main"]] == [1]
        failed = result.outputs["error"][0].json
        assert "redis incr on 'list'" in failed["error"]["message"]
        assert "WRONGTYPE" in failed["error"]["message"]

    async def test_a_loopback_host_is_refused_when_the_guard_is_on(
        self, redis_server: RedisServer, server: aioredis.Redis
    ) -> None:
        """The production policy (no private addresses) refuses 127.0.0.1 before connecting;
        allowing the network lets the same credential through."""
        guarded = HostGuard(AddressPolicy())
        with pytest.raises(NodeError) as caught:
            await run(
                redis_server, {"operation": "set", "key": "k", "value": "v"}, addresses=guarded
            )
        assert "127.0.0.1 is not allowed (loopback)" in caught.value.message
        assert caught.value.retryable is False
        assert await server.exists("k") == 0
        allowed = HostGuard(AddressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),)))
        await run(redis_server, {"operation": "set", "key": "k", "value": "v"}, addresses=allowed)
        assert await server.get("k") == b"v"


class TestCredentialCheck:
    async def test_the_check_pings_and_fails_clearly(
        self, redis_server: RedisServer, acl_user: None
    ) -> None:
        """PING answers with the right password; a wrong one is a refused login."""
        assert REDIS_CREDENTIAL.check is not None
        context = _CheckContext()
        ok = await REDIS_CREDENTIAL.check(context, credential(redis_server))
        assert ok == f"PING answered by 127.0.0.1:{redis_server.port} (database {DB})"
        with pytest.raises(NodeError, match="refused the login"):
            await REDIS_CREDENTIAL.check(context, credential(redis_server, password="nope"))
        assert REDIS_CREDENTIAL.secret_fields == {"password"}


class _CheckContext:
    """The check's context as the control plane gives it, with loopback allowed."""

    timeout_s = 5.0

    def http(self) -> Any:
        raise AssertionError("the redis check makes no HTTP request")

    async def resolve_host(self, host: str, port: int) -> list[str]:
        guard = HostGuard(AddressPolicy(allow_private=True))
        return await asyncio.wait_for(guard.resolve(host, port, timeout_s=5), 5)
