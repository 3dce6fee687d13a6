"""The mongodb node and credential against the session's fake MongoDB server, which
speaks the wire protocol to pymongo (tests/_mongo_wire.py: no MongoDB can be installed
here). Each test asserts what the server was sent and what the node put out."""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

import pytest
from bson import ObjectId

from linkflow.nodes.integrations.mongodb import MONGODB_CREDENTIAL, MongoDb
from linkflow.nodes.sdk import NodeError, OnError
from linkflow.nodes.testing import FakeContext, items, per_item, run_node
from linkflow.security.ssrf import AddressPolicy, HostGuard
from tests._mongo_wire import FakeMongo
from tests._services import free_port
from tests.conftest import MONGO_PASSWORD, MONGO_USER

_databases = itertools.count(1)

# About one run in three, a socket the driver opened is closed by the garbage collector
# rather than by the driver (seen after client.close(); not traced yet: see the report of
# issue 17's MongoDB commit). Only that warning is let through.
pytestmark = [
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
    ),
]


@pytest.fixture
def database(mongo_server: FakeMongo) -> str:
    """A database of the test's own; the server's record of commands starts empty."""
    with mongo_server.lock:
        mongo_server.commands.clear()
    return f"node_tests_{next(_databases)}"


def credential(server: FakeMongo, database: str, password: str = MONGO_PASSWORD) -> dict[str, Any]:
    uri = f"mongodb://{MONGO_USER}:{password}@{server.address}/{database}?authSource=admin"
    return {"type": "mongodb", "connection_string": uri}


async def run(
    server: FakeMongo, database: str, parameters: dict[str, Any], *inputs: dict[str, Any],
    **ctx: Any,
) -> list[dict[str, Any]]:  # fmt: skip
    context = FakeContext(
        items=items(*(inputs or ({},))),
        parameters=parameters,
        credentials={"mongodb": ctx.pop("cred", None) or credential(server, database)},
        **ctx,
    )
    result = await run_node(MongoDb, context)
    return [item.json for item in result.outputs["main"]]


def seed(server: FakeMongo, database: str, collection: str, *documents: dict[str, Any]) -> None:
    with server.lock:
        server.collection(database, collection).extend(dict(d) for d in documents)


class TestFind:
    async def test_find_sends_filter_projection_sort_and_limit_and_emits_documents(
        self, mongo_server: FakeMongo, database: str
    ) -> None:
        """The find command carries what the parameters say; each document is an item
        with its ObjectId as a string."""
        ids = [ObjectId() for _ in range(4)]
        seed(mongo_server, database, "orders", *(
            {"_id": i, "customer": c, "total": t, "secret": "x"}
            for i, c, t in zip(ids, ["ada", "bob", "ada", "ada"], [5, 7, 12, 30], strict=True)
        ))  # fmt: skip
        out = await run(mongo_server, database, {
            "operation": "find", "collection": "orders",
            "filter": {"customer": "ada", "total": {"$gte": 10}},
            "projection": {"secret": 0}, "sort": {"total": -1}, "limit": 5,
        })  # fmt: skip
        assert out == [
            {"_id": str(ids[3]), "customer": "ada", "total": 30},
            {"_id": str(ids[2]), "customer": "ada", "total": 12},
        ]
        (find,) = mongo_server.received("find")
        assert find["find"] == "orders"
        assert find["$db"] == database
        assert find["filter"] == {"customer": "ada", "total": {"$gte": 10}}
        assert (find["projection"], find["sort"], find["limit"]) == (
            {"secret": 0},
            {"total": -1},
            5,
        )

    async def test_find_follows_the_cursor_with_get_more_and_null_limit_reads_all(
        self, mongo_server: FakeMongo, database: str
    ) -> None:
        """250 documents: the first batch has 101, the driver asks getMore for the rest."""
        seed(mongo_server, database, "events", *({"n": n} for n in range(250)))
        out = await run(mongo_server, database,
                        {"operation": "find", "collection": "events", "limit": None})  # fmt: skip
        assert [o["n"] for o in out] == list(range(250))
        more = mongo_server.received("getmore")
        assert more
        assert all(m["collection"] == "events" for m in more)

    async def test_extended_json_in_the_filter_matches_an_object_id(
        self, mongo_server: FakeMongo, database: str
    ) -> None:
        """`{"$oid": ...}` reaches the server as an ObjectId, per item."""
        target = ObjectId()
        seed(mongo_server, database, "users", {"_id": target, "name": "Ada"}, {"name": "Bob"})
        out = await run(mongo_server, database, {
            "operation": "find", "collection": "users",
            "filter": per_item(lambda item, _: {"_id": {"$oid": item.json["id"]}} if item else {}),
        }, {"id": str(target)})  # fmt: skip
        assert out == [{"_id": str(target), "name": "Ada"}]
        assert mongo_server.received("find")[0]["filter"] == {"_id": target}


class TestWrites:
    async def test_insert_writes_the_item_or_documents_and_outputs_them_with_ids(
        self, mongo_server: FakeMongo, database: str
    ) -> None:
        """Default: each item is a document; a list inserts many in one command."""
        out = await run(mongo_server, database, {"operation": "insert", "collection": "people"},
                        {"name": "Ada"}, {"name": "Bob"})  # fmt: skip
        stored = mongo_server.collection(database, "people")
        assert [(o["name"], o["_id"]) for o in out] == [(d["name"], str(d["_id"])) for d in stored]
        tags = {"operation": "insert", "collection": "tags", "documents": [{"t": "a"}, {"t": "b"}]}
        many = await run(mongo_server, database, tags)
        assert [o["t"] for o in many] == ["a", "b"]
        inserts = mongo_server.received("insert")
        assert [len(i["documents"]) for i in inserts] == [1, 1, 2]

    async def test_update_one_many_and_upsert_report_counts(
        self, mongo_server: FakeMongo, database: str
    ) -> None:
        seed(mongo_server, database, "stock", {"sku": "a", "qty": 1}, {"sku": "a", "qty": 2},
             {"sku": "b", "qty": 3})  # fmt: skip
        base = {"operation": "update", "collection": "stock", "filter": {"sku": "a"},
                "update": {"$inc": {"qty": 10}}}  # fmt: skip
        one = await run(mongo_server, database, base)
        assert one == [{"matched_count": 1, "modified_count": 1, "upserted_id": None}]
        many = await run(mongo_server, database, {**base, "many": True})
        assert many == [{"matched_count": 2, "modified_count": 2, "upserted_id": None}]
        assert [d["qty"] for d in mongo_server.collection(database, "stock")] == [21, 12, 3]
        upsert = await run(mongo_server, database, {**base, "filter": {"sku": "c"},
                                                    "update": {"$set": {"qty": 5}},
                                                    "upsert": True})  # fmt: skip
        created = mongo_server.collection(database, "stock")[-1]
        assert created["sku"] == "c"
        assert upsert == [{"matched_count": 0, "modified_count": 0,
                           "upserted_id": str(created["_id"])}]  # fmt: skip
        updates = [u["updates"][0] for u in mongo_server.received("update")]
        assert [(u["multi"], u.get("upsert", False)) for u in updates] == [
            (False, False),
            (True, False),
            (False, True),
        ]

    async def test_delete_one_then_many(self, mongo_server: FakeMongo, database: str) -> None:
        seed(mongo_server, database, "logs", *({"level": "debug"} for _ in range(3)))
        delete = {"operation": "delete", "collection": "logs", "filter": {"level": "debug"}}
        one = await run(mongo_server, database, delete)
        rest = await run(mongo_server, database, {**delete, "many": True})
        assert (one, rest) == ([{"deleted_count": 1}], [{"deleted_count": 2}])
        assert [d["deletes"][0]["limit"] for d in mongo_server.received("delete")] == [1, 0]

    async def test_aggregate_runs_the_pipeline_and_emits_its_results(
        self, mongo_server: FakeMongo, database: str
    ) -> None:
        seed(mongo_server, database, "sales", {"region": "eu", "amount": 5},
             {"region": "us", "amount": 7}, {"region": "eu", "amount": 10})  # fmt: skip
        pipeline = [{"$match": {"amount": {"$gt": 1}}},
                    {"$group": {"_id": "$region", "total": {"$sum": "$amount"}}},
                    {"$sort": {"total": -1}}]  # fmt: skip
        aggregate = {"operation": "aggregate", "collection": "sales", "pipeline": pipeline}
        out = await run(mongo_server, database, aggregate)
        assert out == [{"_id": "eu", "total": 15}, {"_id": "us", "total": 7}]
        assert mongo_server.received("aggregate")[0]["pipeline"] == pipeline

    async def test_the_client_is_closed_and_its_sessions_ended(
        self, mongo_server: FakeMongo, database: str
    ) -> None:
        """One login per activation, and endSessions when the node is done."""
        await run(mongo_server, database, {"operation": "find", "collection": "x"}, {}, {}, {})
        assert len(mongo_server.received("find")) == 3
        assert len(mongo_server.received("saslcontinue")) == 1
        assert mongo_server.received("endsessions")


class TestErrors:
    async def test_a_bad_filter_is_the_servers_refusal_naming_the_operation(
        self, mongo_server: FakeMongo, database: str
    ) -> None:
        with pytest.raises(NodeError) as bad:
            await run(mongo_server, database, {"operation": "find", "collection": "c",
                                               "filter": {"n": {"$bogus": 1}}})  # fmt: skip
        assert bad.value.message == (
            "mongodb find: the server refused the command: unknown operator: $bogus (BadValue 2)"
        )
        assert bad.value.retryable is False

    async def test_a_wrong_password_is_a_refused_login_without_the_password(
        self, mongo_server: FakeMongo, database: str
    ) -> None:
        cred = credential(mongo_server, database, password="not-the-password")
        with pytest.raises(NodeError) as refused:
            await run(mongo_server, database, {"operation": "find", "collection": "c"}, cred=cred)
        assert refused.value.message == (
            "mongodb find: the server refused the login (authentication failed)"
        )
        assert refused.value.retryable is False
        assert mongo_server.received("find") == []

    async def test_an_unreachable_host_is_retryable(self, database: str) -> None:
        uri = f"mongodb://{MONGO_USER}:{MONGO_PASSWORD}@127.0.0.1:{free_port()}/{database}"
        with pytest.raises(NodeError) as unreachable:
            await run(None, database, {"operation": "find", "collection": "c", "timeout_s": 0.5},  # type: ignore[arg-type]
                      cred={"type": "mongodb", "connection_string": uri})  # fmt: skip
        assert unreachable.value.message.startswith("mongodb find: cannot reach the server (")
        assert unreachable.value.retryable is True
        assert MONGO_PASSWORD not in unreachable.value.message

    async def test_a_duplicate_id_is_a_refused_write(
        self, mongo_server: FakeMongo, database: str
    ) -> None:
        """The second item fails alone with on_error output; the first was written."""
        fixed = {"_id": {"$oid": "65f0a1b2c3d4e5f601234567"}, "n": 1}
        context = FakeContext(items=items({}, {}),
                              parameters={"operation": "insert", "collection": "u",
                                          "documents": fixed},
                              credentials={"mongodb": credential(mongo_server, database)},
                              on_error=OnError.OUTPUT)  # fmt: skip
        result = await run_node(MongoDb, context)
        assert [i.json["_id"] for i in result.outputs["main"]] == ["65f0a1b2c3d4e5f601234567"]
        (failed,) = result.outputs["error"]
        assert "E11000 duplicate key error" in failed.json["error"]["message"]
        assert failed.json["error"]["message"].startswith("mongodb insert: ")

    async def test_bad_connection_strings_and_parameters_are_refused_before_a_command(
        self, mongo_server: FakeMongo, database: str
    ) -> None:
        with pytest.raises(ValueError, match="update is required when operation is update"):
            await run(mongo_server, database, {"operation": "update", "collection": "c"})
        cred = {"type": "mongodb", "connection_string": "postgres://u:hunter2@h/db"}
        with pytest.raises(NodeError) as invalid:
            await run(mongo_server, database, {"operation": "find", "collection": "c"}, cred=cred)
        assert invalid.value.message.startswith("mongodb find: the connection string is not valid")
        assert "hunter2" not in invalid.value.message
        two = {"type": "mongodb", "connection_string": f"mongodb://{mongo_server.address},"
               "127.0.0.2:27017/db"}  # fmt: skip
        with pytest.raises(NodeError, match=r"several hosts .* without TLS are not supported"):
            await run(mongo_server, database, {"operation": "find", "collection": "c"}, cred=two)

    async def test_the_host_passes_the_guard_before_connecting(
        self, mongo_server: FakeMongo, database: str
    ) -> None:
        """The production policy refuses loopback: nothing reaches the server; allowing it,
        `localhost` is resolved once and the driver connects to the address."""
        with pytest.raises(NodeError, match=r"127\.0\.0\.1 is not allowed \(loopback\)"):
            await run(mongo_server, database, {"operation": "find", "collection": "c"},
                      addresses=HostGuard(AddressPolicy()))  # fmt: skip
        assert mongo_server.received() == []
        loopback = AddressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),
                                                   ipaddress.ip_network("::1/128")))  # fmt: skip
        uri = credential(mongo_server, database)["connection_string"].replace(
            "127.0.0.1", "localhost"
        )
        await run(mongo_server, database, {"operation": "find", "collection": "c"},
                  cred={"type": "mongodb", "connection_string": uri},
                  addresses=HostGuard(loopback))  # fmt: skip
        assert len(mongo_server.received("find")) == 1


class TestCredentialCheck:
    async def test_the_check_logs_in_and_pings(
        self, mongo_server: FakeMongo, database: str
    ) -> None:
        assert MONGODB_CREDENTIAL.check is not None
        said = await MONGODB_CREDENTIAL.check(_CheckContext(), credential(mongo_server, database))
        assert said == f"ping answered by {mongo_server.address} (database {database})"
        assert mongo_server.received("ping")[0]["$db"] == database
        with pytest.raises(NodeError, match="mongodb test: the server refused the login"):
            await MONGODB_CREDENTIAL.check(
                _CheckContext(), credential(mongo_server, database, password="wrong")
            )
        assert MONGODB_CREDENTIAL.secret_fields == {"connection_string"}


class _CheckContext:
    timeout_s = 5.0

    def http(self) -> Any:
        raise AssertionError("the mongodb check makes no HTTP request")

    async def resolve_host(self, host: str, port: int) -> list[str]:
        return await HostGuard(AddressPolicy(allow_private=True)).resolve(host, port, timeout_s=5)
