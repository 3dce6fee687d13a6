"""The mysql node and credential against a real MariaDB the suite starts on loopback."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import aiomysql  # type: ignore[import-untyped]
import pytest

from linkflow.nodes.integrations.mysql import MYSQL_CREDENTIAL, MySql
from linkflow.nodes.sdk import NodeError
from linkflow.nodes.testing import FakeContext, items, per_item, run_node
from linkflow.security.ssrf import AddressPolicy, HostGuard
from tests._services import MARIADB_PASSWORD, MARIADB_USER, MariaDBServer, free_port

DATABASE = "nodes_mysql"
SCHEMA = """
CREATE TABLE people (
    id int AUTO_INCREMENT PRIMARY KEY,
    email varchar(200) NOT NULL UNIQUE,
    name varchar(200),
    age int,
    score decimal(6, 2),
    joined datetime,
    tags json
)
"""


@pytest.fixture
async def db(mariadb_server: MariaDBServer) -> AsyncIterator[Any]:
    """A connection to the test database, with an empty `people` table."""
    connection = await aiomysql.connect(
        host="127.0.0.1",
        port=mariadb_server.port,
        user=MARIADB_USER,
        password=MARIADB_PASSWORD,
        autocommit=True,
    )
    async with connection.cursor() as cursor:
        # aiomysql turns the server's notes on IF [NOT] EXISTS into Python warnings.
        await cursor.execute("SET sql_notes = 0")
        await cursor.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        await cursor.execute(f"DROP TABLE IF EXISTS {DATABASE}.people")
        await cursor.execute(f"USE {DATABASE}")
        await cursor.execute(SCHEMA)
        await cursor.execute("SET sql_notes = 1")
    yield connection
    connection.close()


async def scalar(connection: Any, sql: str) -> Any:
    async with connection.cursor() as cursor:
        await cursor.execute(sql)
        return (await cursor.fetchone())[0]


def credential(server: MariaDBServer, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "mysql",
        "host": "127.0.0.1",
        "port": server.port,
        "database": DATABASE,
        "user": MARIADB_USER,
        "password": MARIADB_PASSWORD,
        "ssl": "disable",
        **overrides,
    }


async def run(
    server: MariaDBServer, parameters: dict[str, Any], *inputs: dict[str, Any], **extra: Any
) -> list[dict[str, Any]]:
    context = FakeContext(
        items=items(*(inputs or ({},))),
        parameters=parameters,
        credentials={"mysql": extra.pop("cred", credential(server))},
        **extra,
    )
    result = await run_node(MySql, context)
    return [item.json for item in result.outputs["main"]]


ADA = {
    "email": "ada@example.com",
    "name": "Ada",
    "age": "36",
    "score": 99.5,
    "joined": "2026-01-02 03:04:05",
    "tags": {"role": "admin"},
}


class TestOperations:
    async def test_insert_then_select_round_trips_an_item(
        self, mariadb_server: MariaDBServer, db: Any
    ) -> None:
        """The item's fields go in (an object as JSON text); the row comes back as JSON."""
        inserted = await run(mariadb_server, {"operation": "insert", "table": "people"}, ADA)
        assert inserted == [{"row_count": 1, "inserted_id": 1}]
        rows = await run(
            mariadb_server,
            {"operation": "select", "table": "people", "where": {"email": "ada@example.com"}},
        )
        assert rows == [
            {
                "id": 1,
                "email": "ada@example.com",
                "name": "Ada",
                "age": 36,
                "score": "99.50",
                "joined": "2026-01-02T03:04:05",
                "tags": '{"role":"admin"}',
            }
        ]

    async def test_execute_query_binds_parameters_per_item(
        self, mariadb_server: MariaDBServer, db: Any
    ) -> None:
        """%s is bound (a quote is data, not SQL); rows pair with the item that asked."""
        await run(
            mariadb_server,
            {"operation": "insert", "table": "people"},
            {"email": "a@x", "name": "O'Brien", "age": 40},
            {"email": "b@x", "age": 20},
        )
        context = FakeContext(
            items=items({"name": "O'Brien"}, {"name": "x' OR '1'='1"}),
            parameters={
                "operation": "execute_query",
                "query": "SELECT email FROM people WHERE name = %s",
                "query_parameters": per_item(lambda i, _: [i.json["name"]] if i else []),
            },
            credentials={"mysql": credential(mariadb_server)},
        )
        result = await run_node(MySql, context)
        rows = result.outputs["main"]
        assert [(r.json, r.paired[0].index if r.paired else None) for r in rows] == [
            ({"email": "a@x"}, 0)
        ]

    async def test_update_upsert_select_and_delete(
        self, mariadb_server: MariaDBServer, db: Any
    ) -> None:
        """The statement-building operations, in a row's life."""
        await run(
            mariadb_server,
            {"operation": "insert", "table": "people"},
            {"email": "a@x", "name": "A", "age": 1},
            {"email": "b@x", "name": "B", "age": 2},
        )
        updated = await run(
            mariadb_server,
            {
                "operation": "update",
                "table": "people",
                "values": {"age": 10},
                "where": {"email": "a@x"},
            },
        )
        assert updated == [{"row_count": 1}]
        await run(
            mariadb_server,
            {"operation": "upsert", "table": "people", "conflict_columns": ["email"]},
            {"email": "b@x", "name": "Bee"},
            {"email": "c@x", "name": "C"},
        )
        selected = await run(
            mariadb_server,
            {
                "operation": "select",
                "table": "people",
                "columns": ["email", "name"],
                "order_by": ["email desc"],
                "limit": 2,
            },
        )
        assert selected == [{"email": "c@x", "name": "C"}, {"email": "b@x", "name": "Bee"}]
        nulls = await run(
            mariadb_server,
            {
                "operation": "select",
                "table": "people",
                "where": {"age": None},
                "columns": ["email"],
            },
        )
        assert nulls == [{"email": "c@x"}]
        deleted = await run(
            mariadb_server, {"operation": "delete", "table": "people", "where": {"email": "a@x"}}
        )
        assert deleted == [{"row_count": 1}]
        assert await scalar(db, "SELECT count(*) FROM people") == 2

    async def test_identifiers_are_quoted_not_spliced(
        self, mariadb_server: MariaDBServer, db: Any
    ) -> None:
        """A table name carrying SQL names a table that does not exist, nothing more."""
        with pytest.raises(NodeError) as caught:
            await run(
                mariadb_server, {"operation": "select", "table": "people`; DROP TABLE people; --"}
            )
        assert "doesn't exist" in caught.value.message
        assert "[error 1146]" in caught.value.message
        assert await scalar(db, "SELECT count(*) FROM people") == 0

    async def test_the_servers_warnings_come_out_with_the_row_count(
        self, mariadb_server: MariaDBServer, db: Any
    ) -> None:
        """Outside strict mode MySQL truncates a value and says so: the node reports it."""
        async with db.cursor() as cursor:
            await cursor.execute("SET GLOBAL sql_mode = ''")
        try:
            out = await run(
                mariadb_server,
                {"operation": "insert", "table": "people"},
                {"email": "a@x", "age": "12 years"},
            )
        finally:
            async with db.cursor() as cursor:
                await cursor.execute("SET GLOBAL sql_mode = DEFAULT")
        assert out[0]["row_count"] == 1
        assert out[0]["warnings"] == ["Data truncated for column 'age' at row 1"]


class TestErrors:
    async def test_a_duplicate_key_names_the_operation_and_is_not_retried(
        self, mariadb_server: MariaDBServer, db: Any
    ) -> None:
        """1062, with MySQL's message."""
        await run(mariadb_server, {"operation": "insert", "table": "people"}, {"email": "a@x"})
        with pytest.raises(NodeError) as caught:
            await run(mariadb_server, {"operation": "insert", "table": "people"}, {"email": "a@x"})
        assert caught.value.message == (
            "mysql insert: Duplicate entry 'a@x' for key 'email' [error 1062]"
        )
        assert caught.value.retryable is False

    async def test_a_wrong_password_and_a_closed_port(
        self, mariadb_server: MariaDBServer, db: Any
    ) -> None:
        """A refused login is final and quotes no password; nothing listening may pass."""
        with pytest.raises(NodeError) as refused:
            await run(
                mariadb_server,
                {"operation": "select", "table": "people"},
                cred=credential(mariadb_server, password="wrong-pa55word"),
            )
        assert "Access denied for user 'linkflow'" in refused.value.message
        assert "[error 1045]" in refused.value.message
        assert "wrong-pa55word" not in refused.value.message
        assert refused.value.retryable is False
        with pytest.raises(NodeError) as closed:
            await run(
                mariadb_server,
                {"operation": "select", "table": "people"},
                cred=credential(mariadb_server, port=free_port()),
            )
        assert closed.value.message.startswith("mysql select: ")
        assert closed.value.retryable is True

    async def test_a_loopback_host_is_refused_when_the_guard_is_on(
        self, mariadb_server: MariaDBServer, db: Any
    ) -> None:
        """The production policy refuses 127.0.0.1 before connecting."""
        with pytest.raises(NodeError, match=r"127\.0\.0\.1 is not allowed \(loopback\)"):
            await run(
                mariadb_server,
                {"operation": "insert", "table": "people"},
                {"email": "a@x"},
                addresses=HostGuard(AddressPolicy()),
            )
        assert await scalar(db, "SELECT count(*) FROM people") == 0
        loopback = AddressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))
        await run(
            mariadb_server,
            {"operation": "insert", "table": "people"},
            {"email": "a@x"},
            addresses=HostGuard(loopback),
        )
        assert await scalar(db, "SELECT count(*) FROM people") == 1


class TestCredentialCheck:
    async def test_the_check_selects_1_and_names_a_missing_database(
        self, mariadb_server: MariaDBServer, db: Any
    ) -> None:
        """ok names the database; an unknown one is MySQL's 1049."""
        assert MYSQL_CREDENTIAL.check is not None
        ok = await MYSQL_CREDENTIAL.check(_CheckContext(), credential(mariadb_server))
        assert ok == f"connected to {DATABASE} at 127.0.0.1:{mariadb_server.port} (SELECT 1)"
        with pytest.raises(NodeError, match=r"Unknown database 'no_such_db' \[error 1049\]"):
            await MYSQL_CREDENTIAL.check(
                _CheckContext(), credential(mariadb_server, database="no_such_db")
            )
        assert MYSQL_CREDENTIAL.secret_fields == {"password"}


class _CheckContext:
    timeout_s = 5.0

    def http(self) -> Any:
        raise AssertionError("the mysql check makes no HTTP request")

    async def resolve_host(self, host: str, port: int) -> list[str]:
        return await HostGuard(AddressPolicy(allow_private=True)).resolve(host, port, timeout_s=5)
