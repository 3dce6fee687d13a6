"""The MongoDB integration: the `mongodb` node (find, insert, update, delete, aggregate)
and the `mongodb` credential (a connection string), on pymongo's asyncio API.

Decisions:
- pymongo's own `AsyncMongoClient` (pymongo >= 4.9) rather than motor: motor runs
  pymongo in threads and is deprecated in its favour (MongoDB ends motor's support
  in 2026); the asyncio client is native and ships with the `bson` package.
- The connection string is parsed first (pymongo's parser; `mongodb+srv://` looks
  up its SRV records) and every seed host passes the SSRF guard. One host without
  TLS: the client connects to the vetted address itself, directly (no discovery
  of other members), so a second DNS answer cannot point it elsewhere. With TLS
  the hosts are connected by name, as certificate verification needs. Several
  hosts (a replica set) without TLS are refused: the driver would resolve their
  names again itself. In every case a server selector keeps commands on the
  seed hosts, so a server cannot send the driver to members nobody vetted.
- One client per activation, opened on the first item and closed at the end.
- Values in (filters, documents, updates, pipelines) are MongoDB Extended JSON, so
  `{"_id": {"$oid": "..."}}` and `{"$date": "..."}` mean what they say; values out
  are plain JSON: ObjectIds as their hex string, dates in ISO 8601, decimals as
  strings, binary as base64.
- Errors name the operation and the server's code name, never the connection
  string or its password; a dropped connection, an unreachable server, a primary
  stepping down or a time limit may pass on a retry, a refused login, a bad filter
  or a duplicate key will not.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Final
from urllib.parse import unquote

import bson
from bson import json_util
from bson.errors import InvalidDocument, InvalidId
from pymongo import AsyncMongoClient
from pymongo import errors as mongo_errors
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.uri_parser import parse_uri
from pymongo.server_description import ServerDescription

from linkflow.nodes.builtin._common import Params, canonical_json
from linkflow.nodes.sdk import (
    CheckContext,
    CredentialField,
    CredentialType,
    Item,
    JsonObject,
    Lineage,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    amap_items,
)

__all__ = ["CREDENTIALS", "MONGODB_CREDENTIAL", "NODES", "MongoDb"]

OPERATIONS: Final = ("find", "insert", "update", "delete", "aggregate")
DEFAULT_PORT: Final = 27017
DEFAULT_TIMEOUT_S: Final = 30.0
"""Selecting a server, connecting, and each command."""
DEFAULT_LIMIT: Final = 1000
"""find: documents per item unless `limit` says otherwise, so a forgotten filter cannot
put a whole collection in the history."""
# Server codes that may pass on a retry: a primary stepping down or shutting down, a
# node recovering, network trouble between members, time limits.
_RETRYABLE_CODES: Final = frozenset(
    {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 50, 134}
)
_LOGIN_REFUSED: Final = 18  # AuthenticationFailed
_NOT_AUTHORIZED: Final = 13  # Unauthorized

_REQUIRED: Final = {
    "find": ("collection",), "insert": ("collection",), "update": ("collection", "update"),
    "delete": ("collection",), "aggregate": ("collection", "pipeline"),
}  # fmt: skip

Client = AsyncMongoClient[dict[str, Any]]


async def _ping(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """Connects (logging in when the string has a user) and sends ping."""
    client, where, database = await _connect(ctx.resolve_host, data, ctx.timeout_s, "test")
    try:
        await _call("test", data, client[database].command("ping"))
    finally:
        await client.close()
    return f"ping answered by {where} (database {database})"


MONGODB_CREDENTIAL: Final = CredentialType(
    "mongodb",
    "MongoDB",
    "A MongoDB deployment, by its connection string (mongodb:// or mongodb+srv://).",
    (
        CredentialField("connection_string", required=True, secret=True,
                        description="e.g. mongodb://user:password@host:27017/?authSource=admin"),
        CredentialField("database", description="The database when the string names none "
                        "(default: test)."),
    ),
    check=_ping,
)  # fmt: skip


class MongoDb(Node):
    type = "mongodb"
    display_name = "MongoDB"
    group = NodeGroup.ACTION
    description = (
        "Per item, one operation on a MongoDB collection (credential slot `mongodb`): "
        "`find` the documents matching `filter` (with `projection`, `sort`, `skip`, at most "
        "`limit`), one item each; `insert` `documents` (one object or a list; default: the "
        "item), one item per inserted document with its `_id`; `update` the first document "
        "matching `filter` (`many`: all of them) with `update` (operators such as `$set`, "
        "or a replacement), `upsert` to insert when none matches; `delete` the first "
        "matching document (`many`: all); `aggregate` with `pipeline`, one item per result. "
        'Values in are MongoDB Extended JSON (`{"$oid": ...}`, `{"$date": ...}`); '
        "ObjectIds come out as strings and dates in ISO 8601."
    )
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"mongodb": ("mongodb",)}
    lineage = Lineage.EXPLICIT
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "operation": {"type": "string", "enum": list(OPERATIONS), "default": "find",
                          "description": "What to do."},
            "database": {"type": "string", "minLength": 1,
                         "description": "The database (default: the credential's)."},
            "collection": {"type": "string", "minLength": 1, "description": "The collection."},
            "filter": {"type": "object", "default": {},
                       "description": "find, update, delete: the query (Extended JSON)."},
            "projection": {"type": "object",
                           "description": "find: the fields to return (1) or leave out (0)."},
            "sort": {"type": "object", "additionalProperties": {"enum": [1, -1]},
                     "description": "find: field → 1 (ascending) or -1 (descending), in order."},
            "skip": {"type": "integer", "minimum": 0, "default": 0,
                     "description": "find: leave out this many matching documents first."},
            "limit": {"type": ["integer", "null"], "minimum": 1, "default": DEFAULT_LIMIT,
                      "description": "find: at most this many documents per item (null: all)."},
            "documents": {"type": ["object", "array"], "items": {"type": "object"},
                          "description": "insert: a document or a list of them (default: the "
                          "item's fields)."},
            "update": {"type": "object",
                       "description": "update: update operators (`$set`, `$inc`...) or a "
                       "replacement document."},
            "many": {"type": "boolean", "default": False,
                     "description": "update, delete: every matching document, not the first."},
            "upsert": {"type": "boolean", "default": False,
                       "description": "update: insert a document when none matches."},
            "pipeline": {"type": "array", "items": {"type": "object"},
                         "description": "aggregate: the stages."},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600,
                          "default": DEFAULT_TIMEOUT_S,
                          "description": "Selecting a server, connecting, and each command."},
        },
        "required": ["operation", "collection"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        operation = parameters.get("operation", "find")
        return [
            f"{name} is required when operation is {operation}"
            for name in _REQUIRED.get(operation, ())
            if parameters.get(name) in (None, {}, [])
        ]

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        client: Client | None = None
        default_database = "test"
        data: JsonObject = {}

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal client, default_database, data
            operation = params.text("operation", index)
            if client is None:
                data = await ctx.credential("mongodb")
                timeout_s = params.number("timeout_s", index)
                client, _, default_database = await _connect(
                    ctx.resolve_host, data, timeout_s, operation
                )
            database = params.optional_text("database", index) or default_database
            collection = client[database][params.text("collection", index)]
            documents = await _OPERATIONS[operation](
                _Call(ctx, params, item, index, operation, data), collection
            )
            return [item.derive(_plain(document), index) for document in documents]

        try:
            return await amap_items(ctx, apply)
        finally:
            if client is not None:
                await client.close()


Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


def _scrubbed(text: str, data: Mapping[str, Any]) -> str:
    """`text` without the connection string or its password, should a library quote them."""
    uri = str(data.get("connection_string") or "")
    password = _password_of(uri)
    for secret in (uri, password, unquote(password)):
        if secret:
            text = text.replace(secret, "***")
    return text


def _password_of(uri: str) -> str:
    _, _, rest = uri.partition("://")
    login, at, _ = rest.rpartition("@")
    return login.partition(":")[2] if at else ""


async def _connect(
    resolve: Resolve, data: Mapping[str, Any], timeout_s: float, operation: str
) -> tuple[Client, str, str]:
    """A client of the credential's deployment, what a message calls it, its database."""
    uri = str(data.get("connection_string") or "")
    try:
        parsed = await parse_uri(uri, validate=True, warn=False, connect_timeout=timeout_s)
    except (mongo_errors.InvalidURI, mongo_errors.ConfigurationError, ValueError) as error:
        reason = _scrubbed(str(error), data)[:300]
        raise NodeError(f"mongodb {operation}: the connection string is not valid: {reason}",
                        retryable=isinstance(error, mongo_errors.ConfigurationError)
                        and "DNS" in str(error)) from None  # fmt: skip
    options = {str(key): value for key, value in parsed["options"].items()}
    lowered = {key.lower(): value for key, value in options.items()}
    tls = bool(lowered.get("tls") or lowered.get("ssl"))
    nodes: list[tuple[str, int]] = [(str(h), int(p)) for h, p in parsed["nodelist"]]
    where = ", ".join(f"{host}:{port}" for host, port in nodes)
    if len(nodes) > 1 and not tls:
        raise NodeError(f"mongodb {operation}: several hosts ({where}) without TLS are not "
                        "supported: the driver would look their names up again, past the "
                        "address check; use TLS, or one host")  # fmt: skip
    vetted = [(host, port, await resolve(host, port)) for host, port in nodes]
    if tls:
        hosts = [f"{_bracketed(host)}:{port}" for host, port, _ in vetted]
    else:
        _, port, addresses = vetted[0]
        hosts = [f"{_bracketed(addresses[0])}:{port}"]
        options["directConnection"] = True
        options.pop("replicaSet", None)
    seeds = {_address_key(entry) for entry in hosts}

    def on_seeds(servers: list[ServerDescription]) -> list[ServerDescription]:
        return [server for server in servers if _address_key(server.address) in seeds]

    for name in ("serverSelectionTimeoutMS", "connectTimeoutMS", "socketTimeoutMS"):
        options[name] = int(timeout_s * 1000)
    # The caller's options win over nothing here: the URI's own come first, ours last.
    client: Client = AsyncMongoClient(
        host=hosts, username=parsed["username"], password=parsed["password"],
        server_selector=on_seeds, appname="linkflow", connect=False,
        document_class=dict, tz_aware=True, **_without_keys(options, {"appname"}),
    )  # fmt: skip
    database = parsed["database"] or str(data.get("database") or "") or "test"
    return client, where, database


def _without_keys(options: Mapping[str, Any], names: set[str]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key.lower() not in names}


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _address_key(address: str | tuple[str, int | None]) -> tuple[str, int]:
    if isinstance(address, tuple):
        return address[0].strip("[]").lower(), int(address[1] or DEFAULT_PORT)
    host, _, port = address.rpartition(":")
    return host.strip("[]").lower(), int(port)


async def _call(operation: str, data: Mapping[str, Any], pending: Awaitable[Any]) -> Any:
    """Await one driver call, its failures as node errors naming the operation."""
    what = f"mongodb {operation}"
    try:
        return await pending
    except mongo_errors.ServerSelectionTimeoutError as error:
        reason = _scrubbed(str(error).split(", Timeout:")[0], data)[:200]
        raise NodeError(f"{what}: cannot reach the server ({reason})", retryable=True) from None
    except (mongo_errors.NetworkTimeout, mongo_errors.ExecutionTimeout):
        raise NodeError(f"{what}: timed out", retryable=True) from None
    except mongo_errors.BulkWriteError as error:
        first = (error.details.get("writeErrors") or [{}])[0]
        message = _scrubbed(str(first.get("errmsg") or error), data)[:300]
        raise NodeError(f"{what}: the server refused a write: {message} "
                        f"(code {first.get('code')})") from None  # fmt: skip
    except mongo_errors.OperationFailure as error:
        raise _failure(what, error, data) from None
    except mongo_errors.ConnectionFailure as error:
        reason = _scrubbed(str(error), data)[:200]
        raise NodeError(f"{what}: the connection failed: {reason}", retryable=True) from None
    except (InvalidDocument, mongo_errors.InvalidOperation, TypeError) as error:
        raise NodeError(f"{what}: {_scrubbed(str(error), data)[:300]}") from None
    except mongo_errors.PyMongoError as error:
        reason = _scrubbed(str(error), data)[:300]
        retryable = error.has_error_label("RetryableWriteError")
        raise NodeError(f"{what}: {type(error).__name__}: {reason}",
                        retryable=retryable) from None  # fmt: skip


def _failure(what: str, error: mongo_errors.OperationFailure, data: Mapping[str, Any]) -> NodeError:
    details = error.details or {}
    code = error.code
    name = str(details.get("codeName") or "")
    message = _scrubbed(str(details.get("errmsg") or error), data)[:300]
    if code == _LOGIN_REFUSED:
        return NodeError(f"{what}: the server refused the login (authentication failed)")
    if code == _NOT_AUTHORIZED:
        return NodeError(f"{what}: not authorized: {message}")
    shown = f"{name} {code}" if name else f"code {code}"
    retryable = code in _RETRYABLE_CODES or error.has_error_label("RetryableWriteError")
    return NodeError(f"{what}: the server refused the command: {message} ({shown})",
                     retryable=retryable)  # fmt: skip


# --- values in and out -----------------------------------------------------------------


def _extended(value: Any, name: str, index: int) -> Any:
    """A parameter's JSON as BSON values: MongoDB Extended JSON (`$oid`, `$date`...)."""
    try:
        return json_util.loads(canonical_json(value))
    except (ValueError, TypeError, InvalidId) as error:
        raise NodeError(f"mongodb: parameter {name!r} is not valid Extended JSON: "
                        f"{str(error)[:200]}", item_index=index) from None  # fmt: skip


def _plain(value: Any) -> Any:
    """A BSON value as plain JSON."""
    if isinstance(value, Mapping):
        return {str(key): _plain(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(inner) for inner in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bson.ObjectId | uuid.UUID | Decimal | bson.Decimal128):
        return str(value)
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, bson.Regex):
        return str(value.pattern)
    return str(value)


class _Call:
    """What one operation needs: the item's parameters, and the credential to scrub."""

    def __init__(
        self, ctx: NodeContext, params: Params, item: Item, index: int, operation: str,
        data: Mapping[str, Any],
    ) -> None:  # fmt: skip
        self.ctx, self.params, self.item, self.index = ctx, params, item, index
        self.operation, self.data = operation, data

    def query(self, name: str) -> dict[str, Any]:
        value = _extended(self.params.mapping(name, self.index), name, self.index)
        return dict(value)

    async def __call__(self, pending: Awaitable[Any]) -> Any:
        return await _call(self.operation, self.data, pending)


Collection = AsyncCollection[dict[str, Any]]


async def _find(call: _Call, collection: Collection) -> list[JsonObject]:
    params, index = call.params, call.index
    # Params.get would turn an explicit null into the default; null means every document.
    every = call.ctx.param("limit", index, DEFAULT_LIMIT) is None
    limit = 0 if every else params.integer("limit", index)
    projection = params.get("projection", index)
    cursor = collection.find(
        call.query("filter"), projection=_extended(projection, "projection", index)
        if projection else None, skip=params.integer("skip", index), limit=limit,
    )  # fmt: skip
    sort = params.mapping("sort", index)
    if sort:
        cursor = cursor.sort([(str(key), int(direction)) for key, direction in sort.items()])
    documents: list[JsonObject] = await call(cursor.to_list())
    return documents


async def _insert(call: _Call, collection: Collection) -> list[JsonObject]:
    raw = call.params.get("documents", call.index)
    if raw is None:
        raw = call.item.json
    given = raw if isinstance(raw, list) else [raw]
    if not given or not all(isinstance(document, dict) for document in given):
        raise NodeError("mongodb insert: documents must be an object or a list of objects",
                        item_index=call.index)  # fmt: skip
    documents = [dict(_extended(document, "documents", call.index)) for document in given]
    if len(documents) == 1:
        await call(collection.insert_one(documents[0]))
    else:
        await call(collection.insert_many(documents))
    return documents  # the driver set each one's _id


async def _update(call: _Call, collection: Collection) -> list[JsonObject]:
    params, index = call.params, call.index
    update = call.query("update")
    replacement = not any(key.startswith("$") for key in update)
    many = params.flag("many", index)
    if replacement and many:
        raise NodeError("mongodb update: a replacement document (no $ operators) replaces "
                        "one document; set many to false or use $set",
                        item_index=index)  # fmt: skip
    filter_, upsert = call.query("filter"), params.flag("upsert", index)
    if replacement:
        pending = collection.replace_one(filter_, update, upsert=upsert)
    elif many:
        pending = collection.update_many(filter_, update, upsert=upsert)
    else:
        pending = collection.update_one(filter_, update, upsert=upsert)
    result = await call(pending)
    return [{"matched_count": result.matched_count, "modified_count": result.modified_count,
             "upserted_id": result.upserted_id}]  # fmt: skip


async def _delete(call: _Call, collection: Collection) -> list[JsonObject]:
    filter_ = call.query("filter")
    many = call.params.flag("many", call.index)
    pending = collection.delete_many(filter_) if many else collection.delete_one(filter_)
    result = await call(pending)
    return [{"deleted_count": result.deleted_count}]


async def _aggregate(call: _Call, collection: Collection) -> list[JsonObject]:
    pipeline = _extended(call.params.array("pipeline", call.index), "pipeline", call.index)
    cursor = await call(collection.aggregate(list(pipeline)))
    documents: list[JsonObject] = await call(cursor.to_list())
    return documents


_OPERATIONS: Final[Mapping[str, Callable[[_Call, Collection], Awaitable[list[JsonObject]]]]] = {
    "find": _find, "insert": _insert, "update": _update, "delete": _delete,
    "aggregate": _aggregate,
}  # fmt: skip

NODES: tuple[type[Node], ...] = (MongoDb,)
CREDENTIALS: tuple[CredentialType, ...] = (MONGODB_CREDENTIAL,)
