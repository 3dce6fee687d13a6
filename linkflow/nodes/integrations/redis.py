"""The Redis integration: the `redis` node (get, set, incr, delete, publish, push, pop)
and the `redis` credential, on redis-py's asyncio client.

Decisions:
- One connection per activation, opened on the first item and closed at the
  end: a node runs for a handful of items, and a pool kept across executions
  would hold a connection per credential per worker for nothing.
- The host passes the SSRF guard (`ctx.resolve_host`) and the client connects
  to the vetted address, so a second DNS answer cannot point it elsewhere.
  With TLS it connects by name, as certificate verification needs; a
  rebinding answer then meets a certificate that does not name it.
- Values are text: a value to write that is not a string is written as
  compact JSON, and `parse_json` turns what is read back into JSON values.
- Errors name the operation and the key, never the password; a connection
  failure or a timeout may pass on a retry, a refused login or a wrong type
  will not.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Final

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from linkflow.nodes.builtin._common import Params, canonical_json, set_path
from linkflow.nodes.sdk import (
    CheckContext,
    CredentialField,
    CredentialType,
    Item,
    JsonObject,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    amap_items,
)

__all__ = ["CREDENTIALS", "NODES", "REDIS_CREDENTIAL", "Redis"]

OPERATIONS: Final = ("get", "set", "incr", "delete", "publish", "push", "pop")
DEFAULT_TIMEOUT_S: Final = 10.0
"""Connecting and each command: a Redis that answers slower than this is in trouble."""

# Parameters each operation needs beyond `operation` (checked when the workflow is saved).
_REQUIRED: Final = {
    "get": ("key",), "set": ("key", "value"), "incr": ("key",), "delete": ("key",),
    "publish": ("channel", "message"), "push": ("key", "value"), "pop": ("key",),
}  # fmt: skip


async def _ping(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """Connects and sends PING."""
    client = await _connect(ctx.resolve_host, data, ctx.timeout_s)
    try:
        await _call("test", "", client.ping())
    finally:
        await client.aclose()
    return f"PING answered by {data['host']}:{data['port']} (database {data.get('database', 0)})"


REDIS_CREDENTIAL: Final = CredentialType(
    "redis",
    "Redis",
    "A Redis server (or Valkey, KeyDB...): host, port, database number and an optional login.",
    (
        CredentialField("host", required=True),
        CredentialField("port", "integer", default=6379, minimum=1, maximum=65535),
        CredentialField("database", "integer", default=0, minimum=0, maximum=1023),
        CredentialField("username", description="For an ACL user; empty: the default user."),
        CredentialField("password", secret=True),
        CredentialField("tls", "boolean", default=False, description="Connect over TLS."),
    ),
    check=_ping,
)


class Redis(Node):
    type = "redis"
    display_name = "Redis"
    group = NodeGroup.ACTION
    description = (
        "Per item, one command on a Redis server (credential slot `redis`): `get` a key (a "
        "string, or a hash, list or set read whole), `set` a key (with `ttl_s`), `incr` a "
        "counter by `by`, `delete` a key, `publish` a message to a channel, `push` onto a "
        "list or `pop` from it (`tail`: the right end). The result goes to `output_field` "
        "of the item: the value read (null when the key is absent), the counter's new value, "
        "how many keys were deleted, how many subscribers received the message, the list's "
        "new length, or true for `set`. Values that are not strings are written as JSON; "
        "`parse_json` reads JSON back."
    )
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"redis": ("redis",)}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "operation": {"type": "string", "enum": list(OPERATIONS), "default": "get",
                          "description": "The command to run."},
            "key": {"type": "string", "minLength": 1,
                    "description": "get, set, incr, delete: the key; push, pop: the list."},
            "value": {"description": "set, push: the value (not a string: written as JSON)."},
            "channel": {"type": "string", "minLength": 1, "description": "publish: the channel."},
            "message": {"description": "publish: the message (not a string: sent as JSON)."},
            "ttl_s": {"type": ["integer", "null"], "minimum": 1,
                      "description": "set, incr: expire the key after this many seconds."},
            "by": {"type": "integer", "default": 1, "description": "incr: the increment."},
            "tail": {"type": "boolean", "default": True,
                     "description": "push, pop: the list's right end (false: its left end)."},
            "parse_json": {"type": "boolean", "default": False,
                           "description": "get, pop: parse the value read as JSON."},
            "output_field": {"type": "string", "minLength": 1, "default": "value",
                             "description": "Dotted path of the item where the result goes."},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 300,
                          "default": DEFAULT_TIMEOUT_S,
                          "description": "Connecting, and each command."},
        },
        "required": ["operation"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        operation = parameters.get("operation", "get")
        return [
            f"{name} is required when operation is {operation}"
            for name in _REQUIRED.get(operation, ())
            if parameters.get(name) is None
        ]

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        client: aioredis.Redis | None = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal client
            operation = params.text("operation", index)
            if client is None:
                data = await ctx.credential("redis")
                client = await _connect(ctx.resolve_host, data, params.number("timeout_s", index))
            result = await _COMMANDS[operation](client, params, index)
            json = dict(item.json)
            set_path(json, params.text("output_field", index), result)
            return [item.derive(json, index)]

        try:
            return await amap_items(ctx, apply)
        finally:
            if client is not None:
                await client.aclose()


Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


async def _connect(resolve: Resolve, data: Mapping[str, Any], timeout_s: float) -> aioredis.Redis:
    """A client of the credential's server (it connects on its first command)."""
    host, port = str(data["host"]), int(data.get("port") or 6379)
    addresses = await resolve(host, port)
    tls = bool(data.get("tls"))
    return aioredis.Redis(
        host=host if tls else addresses[0], port=port, db=int(data.get("database") or 0),
        username=data.get("username") or None, password=data.get("password") or None,
        ssl=tls, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
        # The node's retry policy decides about retries; the client's own would hide them.
        retry=Retry(NoBackoff(), 0), decode_responses=False,
    )  # fmt: skip


async def _call(operation: str, key: str, pending: Awaitable[Any]) -> Any:
    """Await one command, its failures as node errors naming `operation` and `key`."""
    where = f"redis {operation}" + (f" on {key!r}" if key else "")
    try:
        return await pending
    except redis_errors.AuthenticationError:
        raise NodeError(f"{where}: the server refused the login") from None
    except (redis_errors.NoPermissionError, redis_errors.AuthorizationError) as error:
        raise NodeError(f"{where}: not permitted: {str(error)[:200]}") from None
    except redis_errors.TimeoutError:
        raise NodeError(f"{where}: timed out", retryable=True) from None
    except redis_errors.ConnectionError as error:
        raise NodeError(f"{where}: connection failed: {str(error)[:200]}", retryable=True) from None
    except (redis_errors.BusyLoadingError, redis_errors.TryAgainError) as error:
        raise NodeError(f"{where}: {str(error)[:200]}", retryable=True) from None
    except redis_errors.RedisError as error:
        raise NodeError(f"{where}: {str(error)[:200]}") from None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else canonical_json(value)


def _decoded(value: Any, params: Params, index: int, key: str) -> Any:
    """A value read back: bytes as text (JSON when asked); lists, sets and hashes inside."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {_decoded(k, params, index, key): _decoded(v, params, index, key)
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, list | set):
        return [_decoded(v, params, index, key) for v in value]
    if isinstance(value, int):
        return value
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise NodeError(f"redis: the value of {key!r} is not UTF-8 text",
                        item_index=index) from None  # fmt: skip
    if not params.flag("parse_json", index):
        return text
    try:
        return json.loads(text)
    except ValueError:
        raise NodeError(f"redis: the value of {key!r} is not JSON (parse_json is on)",
                        item_index=index) from None  # fmt: skip


async def _get(client: aioredis.Redis, params: Params, index: int) -> Any:
    key = params.text("key", index)
    kind = (await _call("get", key, client.type(key))).decode()
    readers: Mapping[str, Callable[[str], Awaitable[Any]]] = {
        "none": lambda _: _none(),
        "string": client.get, "hash": client.hgetall, "set": client.smembers,
        "list": lambda name: client.lrange(name, 0, -1),
    }  # fmt: skip
    reader = readers.get(kind)
    if reader is None:
        raise NodeError(f"redis get on {key!r}: a {kind} key cannot be read by get")
    value = _decoded(await _call("get", key, reader(key)), params, index, key)
    return sorted(value, key=str) if kind == "set" else value


async def _none() -> None:
    return None


async def _set(client: aioredis.Redis, params: Params, index: int) -> bool:
    key = params.text("key", index)
    ttl = params.get("ttl_s", index)
    await _call("set", key, client.set(key, _text(params.required("value", index)), ex=ttl))
    return True


async def _incr(client: aioredis.Redis, params: Params, index: int) -> int:
    key = params.text("key", index)
    value = int(await _call("incr", key, client.incrby(key, params.integer("by", index))))
    ttl = params.get("ttl_s", index)
    if ttl is not None:
        await _call("incr", key, client.expire(key, ttl))
    return value


async def _delete(client: aioredis.Redis, params: Params, index: int) -> int:
    key = params.text("key", index)
    return int(await _call("delete", key, client.delete(key)))


async def _publish(client: aioredis.Redis, params: Params, index: int) -> int:
    channel = params.text("channel", index)
    message = _text(params.required("message", index))
    return int(await _call("publish", channel, client.publish(channel, message)))


async def _push(client: aioredis.Redis, params: Params, index: int) -> int:
    key = params.text("key", index)
    value = _text(params.required("value", index))
    push = client.rpush if params.flag("tail", index) else client.lpush
    return int(await _call("push", key, push(key, value)))


async def _pop(client: aioredis.Redis, params: Params, index: int) -> Any:
    key = params.text("key", index)
    pop = client.rpop if params.flag("tail", index) else client.lpop
    return _decoded(await _call("pop", key, pop(key)), params, index, key)


_COMMANDS: Final[Mapping[str, Callable[[aioredis.Redis, Params, int], Awaitable[Any]]]] = {
    "get": _get, "set": _set, "incr": _incr, "delete": _delete,
    "publish": _publish, "push": _push, "pop": _pop,
}  # fmt: skip

NODES: tuple[type[Node], ...] = (Redis,)
CREDENTIALS: tuple[CredentialType, ...] = (REDIS_CREDENTIAL,)
