"""A fake MongoDB server on loopback that speaks the MongoDB wire protocol.

It is a fake because no MongoDB server can be installed here (Debian ships none, and
the suite installs no binaries from elsewhere). It speaks the protocol as a
MongoDB 7.0 standalone does for what pymongo sends the `mongodb` node's operations:

- the handshake as the driver opens a connection: legacy OP_QUERY `isMaster` on
  `admin.$cmd`, answered with OP_REPLY; then OP_MSG (body section, and document
  sequences such as `documents`, `updates` and `deletes`) for everything else;
- `hello`/`isMaster`, `ping`, `saslStart`/`saslContinue` (SCRAM-SHA-256, verified
  against the users it was given, as RFC 5802/7677 describe), `find`, `getMore`,
  `killCursors`, `insert`, `update`, `delete`, `aggregate` and `endSessions`;
- MongoDB's replies: `{ok: 1, ...}` with cursors (`firstBatch`/`nextBatch`, `id`,
  `ns`) and write results (`n`, `nModified`, `upserted`, `writeErrors`), or
  `{ok: 0, errmsg, code, codeName}` for a refused command (an unknown query
  operator is BadValue, a login that fails is AuthenticationFailed, a command
  before logging in is Unauthorized, a duplicate `_id` is a write error 11000).

Documents live in memory per database and collection; BSON is the `bson` package that
ships with pymongo. Filters know equality (also into arrays), `$eq $ne $gt $gte $lt
$lte $in $nin $exists` and `$and $or $nor`; updates `$set $unset $inc $push` or a
replacement; pipelines `$match $sort $skip $limit $project $group $count`. `commands`
records every command received, in order (`(name, body)`), so a test asserts what the
server was sent.

Never bind anything but a loopback address here.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import itertools
import os
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import bson
from bson import ObjectId

__all__ = ["FakeMongo", "MongoUser", "fake_mongo"]

OP_REPLY: Final = 1
OP_QUERY: Final = 2004
OP_MSG: Final = 2013
MAX_WIRE_VERSION: Final = 21  # MongoDB 7.0
FIRST_BATCH: Final = 101
"""MongoDB's default first batch of a cursor."""
SCRAM_ITERATIONS: Final = 15000
"""MongoDB's default for SCRAM-SHA-256."""
_NO_AUTH_NEEDED: Final = frozenset(
    {"hello", "ismaster", "ping", "saslstart", "saslcontinue", "endsessions", "buildinfo"}
)


class CommandError(Exception):
    """A refused command: MongoDB's `{ok: 0, errmsg, code, codeName}`."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code, self.name, self.message = code, name, message

    def reply(self) -> dict[str, Any]:
        return {"ok": 0.0, "errmsg": self.message, "code": self.code, "codeName": self.name}


@dataclass(frozen=True)
class MongoUser:
    name: str
    password: str
    source: str = "admin"


@dataclass
class _Conversation:
    user: MongoUser | None
    client_first_bare: str
    server_first: str
    nonce: str
    salt: bytes


@dataclass
class _Connection:
    """Per TCP connection: who logged in, the SCRAM exchange in progress."""

    user: str | None = None
    conversation: _Conversation | None = None


@dataclass
class FakeMongo:
    """The server's state: databases of collections of documents, users, what was sent."""

    host: str = "127.0.0.1"
    port: int = 0
    users: dict[str, MongoUser] = field(default_factory=dict)
    databases: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    cursors: dict[int, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _cursor_ids: Iterator[int] = field(default_factory=lambda: itertools.count(7_000_001))
    _connections: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, user: str | None = None, password: str | None = None, database: str = "") -> str:
        login = f"{user}:{password}@" if user is not None else ""
        return f"mongodb://{login}{self.address}/{database}"

    def collection(self, database: str, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return self.databases.setdefault(database, {}).setdefault(name, [])

    def received(self, *names: str) -> list[dict[str, Any]]:
        """The bodies of the commands received with these names (all, when none given)."""
        wanted = {name.lower() for name in names}
        with self.lock:
            return [body for name, body in self.commands if not wanted or name in wanted]

    def reset(self) -> None:
        with self.lock:
            self.databases.clear()
            self.commands.clear()
            self.cursors.clear()

    # -- commands ---------------------------------------------------------------------

    def run(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        name = next(iter(body)).lower()
        with self.lock:
            self.commands.append((name, copy.deepcopy(body)))
        try:
            if self.users and connection.user is None and name not in _NO_AUTH_NEEDED:
                command = next(iter(body))
                raise CommandError(13, "Unauthorized", f"Command {command} requires authentication")
            handler = getattr(self, f"_cmd_{name}", None)
            if handler is None:
                raise CommandError(59, "CommandNotFound", f"no such command: '{next(iter(body))}'")
            with self.lock:
                reply: dict[str, Any] = handler(body, connection)
        except CommandError as error:
            return error.reply()
        return {**reply, "ok": 1.0}

    def _cmd_hello(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "helloOk": True, "isWritablePrimary": True, "ismaster": True,
            "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": 48_000_000,
            "maxWriteBatchSize": 100_000, "localTime": datetime.now(UTC),
            "logicalSessionTimeoutMinutes": 30, "connectionId": next(self._connections),
            "minWireVersion": 0, "maxWireVersion": MAX_WIRE_VERSION, "readOnly": False,
        }  # fmt: skip
        if "saslSupportedMechs" in body:
            reply["saslSupportedMechs"] = ["SCRAM-SHA-256"]
        return reply

    _cmd_ismaster = _cmd_hello

    def _cmd_ping(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        return {}

    def _cmd_buildinfo(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        return {"version": "7.0.0", "versionArray": [7, 0, 0, 0], "maxBsonObjectSize": 16777216}

    def _cmd_endsessions(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        return {}

    # SCRAM-SHA-256 (RFC 5802, RFC 7677), as MongoDB runs it in saslStart/saslContinue.

    def _cmd_saslstart(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        if body.get("mechanism") != "SCRAM-SHA-256":
            raise CommandError(334, "MechanismUnavailable",
                               f"Received authentication for mechanism {body.get('mechanism')} "
                               "which is not enabled")  # fmt: skip
        message = bytes(body["payload"]).decode()
        bare = message.split(",", 2)[2]
        fields = dict(part.split("=", 1) for part in bare.split(","))
        user = self.users.get(fields["n"])
        if user is not None and user.source != body.get("$db"):
            user = None
        nonce = fields["r"] + base64.b64encode(os.urandom(18)).decode()
        # An unknown user gets a salt too, and fails at the proof, as MongoDB does.
        salt = hashlib.sha256(f"salt:{fields['n']}".encode()).digest()[:16]
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={SCRAM_ITERATIONS}"
        connection.conversation = _Conversation(user, bare, server_first, nonce, salt)
        return {"conversationId": 1, "done": False, "payload": server_first.encode()}

    def _cmd_saslcontinue(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        talk = connection.conversation
        connection.conversation = None
        failed = CommandError(18, "AuthenticationFailed", "Authentication failed.")
        if talk is None:
            raise failed
        final = bytes(body["payload"]).decode()
        without_proof, _, proof = final.rpartition(",p=")
        fields = dict(part.split("=", 1) for part in without_proof.split(","))
        if talk.user is None or fields.get("r") != talk.nonce:
            raise failed
        salted = hashlib.pbkdf2_hmac("sha256", talk.user.password.encode(), talk.salt,
                                     SCRAM_ITERATIONS)  # fmt: skip
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        auth_message = f"{talk.client_first_bare},{talk.server_first},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        given = base64.b64decode(proof)
        recovered = bytes(a ^ b for a, b in zip(given, signature, strict=False))
        if len(given) != len(signature) or hashlib.sha256(recovered).digest() != stored_key:
            raise failed
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        verifier = base64.b64encode(hmac.digest(server_key, auth_message, "sha256")).decode()
        connection.user = talk.user.name
        return {"conversationId": 1, "done": True, "payload": f"v={verifier}".encode()}

    # Reads.

    def _cursor(
        self, namespace: str, documents: list[dict[str, Any]], first: int
    ) -> dict[str, Any]:
        batch, rest = documents[:first], documents[first:]
        cursor_id = 0
        if rest:
            cursor_id = next(self._cursor_ids)
            self.cursors[cursor_id] = (namespace, rest)
        return {"cursor": {"firstBatch": batch, "id": bson.Int64(cursor_id), "ns": namespace}}

    def _cmd_find(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        name, database = str(body["find"]), str(body["$db"])
        query = _checked(body.get("filter", {}))
        found = [d for d in self.collection(database, name) if _matches(d, query)]
        if body.get("sort"):
            found = _sorted(found, body["sort"])
        skip, limit = int(body.get("skip", 0)), int(body.get("limit", 0))
        found = found[skip:]
        if limit:
            found = found[: abs(limit)]
        if body.get("projection"):
            found = [_project(d, body["projection"]) for d in found]
        else:
            found = [copy.deepcopy(d) for d in found]
        first = int(body.get("batchSize", FIRST_BATCH))
        if body.get("singleBatch"):
            found = found[:first]
        return self._cursor(f"{database}.{name}", found, first)

    def _cmd_getmore(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        cursor_id = int(body["getMore"])
        if cursor_id not in self.cursors:
            raise CommandError(43, "CursorNotFound", f"cursor id {cursor_id} not found")
        namespace, rest = self.cursors.pop(cursor_id)
        size = int(body.get("batchSize", 0)) or len(rest)
        batch, rest = rest[:size], rest[size:]
        if rest:
            self.cursors[cursor_id] = (namespace, rest)
        next_id = cursor_id if rest else 0
        return {"cursor": {"nextBatch": batch, "id": bson.Int64(next_id), "ns": namespace}}

    def _cmd_killcursors(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        killed = [int(c) for c in body.get("cursors", []) if self.cursors.pop(int(c), None)]
        return {"cursorsKilled": killed, "cursorsNotFound": [], "cursorsAlive": [],
                "cursorsUnknown": []}  # fmt: skip

    def _cmd_aggregate(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        name, database = str(body["aggregate"]), str(body["$db"])
        documents = [copy.deepcopy(d) for d in self.collection(database, name)]
        for stage in body.get("pipeline", []):
            documents = _stage(documents, stage)
        first = int((body.get("cursor") or {}).get("batchSize", FIRST_BATCH))
        return self._cursor(f"{database}.{name}", documents, first)

    # Writes.

    def _cmd_insert(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        target = self.collection(str(body["$db"]), str(body["insert"]))
        written, problems = 0, []
        for index, document in enumerate(body.get("documents", [])):
            document = {"_id": ObjectId(), **document} if "_id" not in document else document
            if any(d["_id"] == document["_id"] for d in target):
                problems.append({"index": index, "code": 11000, "errmsg": (
                    f"E11000 duplicate key error collection: {body['$db']}.{body['insert']} "
                    f"index: _id_ dup key: {{ _id: {document['_id']!r} }}")})  # fmt: skip
                if body.get("ordered", True):
                    break
                continue
            target.append(document)
            written += 1
        return {"n": written, **({"writeErrors": problems} if problems else {})}

    def _cmd_update(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        target = self.collection(str(body["$db"]), str(body["update"]))
        matched, modified, upserted = 0, 0, []
        for index, spec in enumerate(body.get("updates", [])):
            hits = [d for d in target if _matches(d, _checked(spec.get("q", {})))]
            if not spec.get("multi"):
                hits = hits[:1]
            for document in hits:
                before = copy.deepcopy(document)
                _apply_update(document, spec["u"])
                matched += 1
                modified += document != before
            if not hits and spec.get("upsert"):
                base = {k: v for k, v in spec.get("q", {}).items() if not k.startswith("$")
                        and not isinstance(v, dict)}  # fmt: skip
                document = {"_id": base.pop("_id", None) or ObjectId(), **base}
                _apply_update(document, spec["u"])
                target.append(document)
                upserted.append({"index": index, "_id": document["_id"]})
        reply: dict[str, Any] = {"n": matched + len(upserted), "nModified": modified}
        if upserted:
            reply["upserted"] = upserted
        return reply

    def _cmd_delete(self, body: dict[str, Any], connection: _Connection) -> dict[str, Any]:
        target = self.collection(str(body["$db"]), str(body["delete"]))
        removed = 0
        for spec in body.get("deletes", []):
            hits = [d for d in target if _matches(d, _checked(spec.get("q", {})))]
            if spec.get("limit") == 1:
                hits = hits[:1]
            for document in hits:
                target.remove(document)
                removed += 1
        return {"n": removed}


# --- matching, updating, aggregating -------------------------------------------------

_MISSING: Final = object()


def _get(document: Mapping[str, Any], path: str) -> Any:
    current: Any = document
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            return _MISSING
    return current


def _compare(value: Any, operator: str, expected: Any) -> bool:
    if operator == "$eq":
        return value == expected or (isinstance(value, list) and expected in value)
    if operator == "$ne":
        return not _compare(value, "$eq", expected)
    if operator == "$in":
        return any(_compare(value, "$eq", option) for option in expected)
    if operator == "$nin":
        return not _compare(value, "$in", expected)
    if operator == "$exists":
        return (value is not _MISSING) == bool(expected)
    if operator in {"$gt", "$gte", "$lt", "$lte"}:
        if value is _MISSING or value is None:
            return False
        try:
            return {"$gt": value > expected, "$gte": value >= expected,
                    "$lt": value < expected, "$lte": value <= expected}[operator]  # fmt: skip
        except TypeError:
            return False
    raise CommandError(2, "BadValue", f"unknown operator: {operator}")


def _checked(query: Mapping[str, Any]) -> Mapping[str, Any]:
    """The query, parsed as MongoDB parses it before reading anything (every operator known)."""
    _matches({}, query)
    return query


def _matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    for key, condition in query.items():
        if key in {"$and", "$or", "$nor"}:
            if not isinstance(condition, list) or not condition:
                raise CommandError(2, "BadValue", f"{key} argument must be a non-empty array")
            results = [_matches(document, part) for part in condition]
            ok = {"$and": all(results), "$or": any(results), "$nor": not any(results)}[key]
        elif key.startswith("$"):
            raise CommandError(2, "BadValue", f"unknown top level operator: {key}")
        elif isinstance(condition, Mapping) and condition and all(k.startswith("$")
                                                                  for k in condition):  # fmt: skip
            value = _get(document, key)
            ok = all(_compare(value, op, expected) for op, expected in condition.items())
        else:
            ok = _compare(_get(document, key), "$eq", condition)
        if not ok:
            return False
    return True


def _sorted(documents: list[dict[str, Any]], spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = list(documents)
    for key, direction in reversed(list(spec.items())):
        out.sort(key=lambda d, k=key: _order(_get(d, k)), reverse=int(direction) < 0)
    return out


def _order(value: Any) -> tuple[int, Any]:
    """MongoDB's order of types, for the kinds tests use: missing/null < numbers < strings."""
    if value is _MISSING or value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (3, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (4, str(value))


def _project(document: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    include = {k for k, v in spec.items() if v and k != "_id"}
    if include:
        out = {k: copy.deepcopy(v) for k, v in document.items() if k in include}
        if spec.get("_id", 1) and "_id" in document:
            out = {"_id": document["_id"], **out}
        return out
    return {k: copy.deepcopy(v) for k, v in document.items() if spec.get(k, 1)}


def _apply_update(document: dict[str, Any], update: Any) -> None:
    if not isinstance(update, Mapping):
        raise CommandError(9, "FailedToParse", "pipeline-style updates are not supported here")
    if not any(key.startswith("$") for key in update):
        keep = document.get("_id")
        document.clear()
        document.update({"_id": keep, **update} if keep is not None else dict(update))
        return
    for operator, fields in update.items():
        for key, value in fields.items():
            if operator == "$set":
                document[key] = value
            elif operator == "$unset":
                document.pop(key, None)
            elif operator == "$inc":
                document[key] = document.get(key, 0) + value
            elif operator == "$push":
                document.setdefault(key, []).append(value)
            else:
                raise CommandError(9, "FailedToParse", f"Unknown modifier: {operator}. Expected "
                                   "a valid update modifier or pipeline-style update specified "
                                   "as an array")  # fmt: skip


def _value(document: Mapping[str, Any], expression: Any) -> Any:
    if isinstance(expression, str) and expression.startswith("$"):
        found = _get(document, expression[1:])
        return None if found is _MISSING else found
    return expression


def _stage(documents: list[dict[str, Any]], stage: Mapping[str, Any]) -> list[dict[str, Any]]:
    ((name, spec),) = stage.items()
    if name == "$match":
        return [d for d in documents if _matches(d, _checked(spec))]
    if name == "$sort":
        return _sorted(documents, spec)
    if name == "$skip":
        return documents[int(spec) :]
    if name == "$limit":
        return documents[: int(spec)]
    if name == "$project":
        return [_project(d, spec) for d in documents]
    if name == "$count":
        return [{spec: len(documents)}] if documents else []
    if name == "$group":
        return _group(documents, spec)
    raise CommandError(40324, "Location40324", f"Unrecognized pipeline stage name: '{name}'")


def _group(documents: list[dict[str, Any]], spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for document in documents:
        groups.setdefault(_value(document, spec["_id"]), []).append(document)
    out = []
    for key, members in groups.items():
        row: dict[str, Any] = {"_id": key}
        for name, accumulator in spec.items():
            if name == "_id":
                continue
            ((operator, expression),) = accumulator.items()
            values = [_value(m, expression) for m in members]
            numbers = [v for v in values if isinstance(v, int | float)]
            if operator == "$sum":
                row[name] = sum(numbers)
            elif operator == "$avg":
                row[name] = sum(numbers) / len(numbers) if numbers else None
            elif operator in {"$min", "$max"}:
                row[name] = (min if operator == "$min" else max)(numbers) if numbers else None
            elif operator == "$push":
                row[name] = values
            elif operator == "$first":
                row[name] = values[0]
            else:
                raise CommandError(15952, "Location15952", f"unknown group operator '{operator}'")
        out.append(row)
    return out


# --- the wire ------------------------------------------------------------------------


def _cstring(data: bytes, offset: int) -> tuple[str, int]:
    end = data.index(b"\x00", offset)
    return data[offset:end].decode(), end + 1


def _op_msg_body(payload: bytes) -> tuple[int, dict[str, Any]]:
    """OP_MSG: flag bits, then a body section (kind 0) and document sequences (kind 1),
    merged into one command as the server sees it."""
    (flags,) = struct.unpack_from("<I", payload)
    offset, end = 4, len(payload) - (4 if flags & 1 else 0)  # bit 0: a checksum follows
    body: dict[str, Any] = {}
    sequences: dict[str, list[dict[str, Any]]] = {}
    while offset < end:
        kind = payload[offset]
        offset += 1
        (size,) = struct.unpack_from("<i", payload, offset)
        if kind == 0:
            body = bson.decode(payload[offset : offset + size])
        else:
            identifier, start = _cstring(payload, offset + 4)
            sequences[identifier] = bson.decode_all(payload[start : offset + size])
        offset += size
    return flags, {**body, **sequences}


def _frame(request_id: int, response_to: int, opcode: int, payload: bytes) -> bytes:
    return struct.pack("<iiii", 16 + len(payload), request_id, response_to, opcode) + payload


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        connection = _Connection()
        sock: socket.socket = self.request
        ids = itertools.count(1)
        while not self.server.stopping.is_set():
            header = _read(sock, 16)
            if header is None:
                return
            length, request_id, _, opcode = struct.unpack("<iiii", header)
            payload = _read(sock, length - 16)
            if payload is None:
                return
            if opcode == OP_QUERY:
                (_flags,) = struct.unpack_from("<i", payload)
                _, offset = _cstring(payload, 4)
                (size,) = struct.unpack_from("<i", payload, offset + 8)
                query = bson.decode(payload[offset + 8 : offset + 8 + size])
                command = query.get("$query", query)
                reply = bson.encode(self.server.fake.run(command, connection))
                body = struct.pack("<iqii", 0, 0, 0, 1) + reply
                sock.sendall(_frame(next(ids), request_id, OP_REPLY, body))
            elif opcode == OP_MSG:
                flags, command = _op_msg_body(payload)
                answer = self.server.fake.run(command, connection)
                if flags & 2:  # moreToCome: the client wants no reply
                    continue
                body = struct.pack("<I", 0) + b"\x00" + bson.encode(answer)
                sock.sendall(_frame(next(ids), request_id, OP_MSG, body))
            else:
                return  # an opcode this fake does not speak: drop the connection


def _read(sock: socket.socket, size: int) -> bytes | None:
    chunks, wanted = [], size
    while wanted:
        try:
            chunk = sock.recv(wanted)
        except OSError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeMongo) -> None:
        super().__init__((fake.host, 0), _Handler)
        self.fake = fake
        self.stopping = threading.Event()


@contextlib.contextmanager
def fake_mongo(
    users: Mapping[str, str] | None = None, host: str = "127.0.0.1"
) -> Iterator[FakeMongo]:
    """Serve a `FakeMongo` on a free port of `host` for the `with` block; `users` maps
    user name → password (in the `admin` database); none: no login is asked for."""
    fake = FakeMongo(host=host, users={n: MongoUser(n, p) for n, p in (users or {}).items()})
    server = _Server(fake)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)  # fmt: skip
    thread.start()
    try:
        yield fake
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
