"""The postgres node and credential against the session's real PostgreSQL."""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from linkflow.nodes.integrations.postgres import POSTGRES_CREDENTIAL, Postgres
from linkflow.nodes.sdk import NodeError
from linkflow.nodes.testing import FakeContext, items, per_item, run_node
from linkflow.security.ssrf import AddressPolicy, HostGuard
from tests._services import PostgresServer, free_port

DATABASE = "nodes_postgres"
SCHEMA = """
CREATE TABLE people (
    id serial PRIMARY KEY,
    email text UNIQUE NOT NULL,
    name text,
    age integer,
    score numeric(6, 2),
    joined timestamptz,
    tags jsonb,
    active boolean DEFAULT true
)
"""


@pytest.fixture(scope="module")
async def database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    admin = await asyncpg.connect(postgres_server.url())
    await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    await admin.execute(f"CREATE DATABASE {DATABASE}")
    yield DATABASE
    await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    await admin.close()


@pytest.fixture
async def db(postgres_server: PostgresServer, database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database, with an empty `people` table."""
    connection = await asyncpg.connect(postgres_server.url(database))
    await connection.execute("DROP TABLE IF EXISTS people")
    await connection.execute(SCHEMA)
    yield connection
    await connection.close()


def credential(server: PostgresServer, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "postgres",
        "host": server.host,
        "port": server.port,
        "database": DATABASE,
        "user": "postgres",
        "password": "unused",
        "sslmode": "disable",
        **overrides,
    }


async def run(
    server: PostgresServer, parameters: dict[str, Any], *inputs: dict[str, Any], **extra: Any
) -> list[dict[str, Any]]:
    context = FakeContext(
        items=items(*(inputs or ({},))),
        parameters=parameters,
        credentials={"postgres": extra.pop("cred", credential(server))},
        **extra,
    )
    result = await run_node(Postgres, context)
    return [item.json for item in result.outputs["main"]]


ADA = {
    "email": "ada@example.com",
    "name": "Ada",
    "age": "36",
    "score": 99.5,
    "joined": "2026-01-02T03:04:05+00:00",
    "tags": {"role": "admin"},
}


class TestOperations:
    async def test_insert_converts_json_values_to_the_columns_types_and_returns_the_row(
        self, postgres_server: PostgresServer, db: asyncpg.Connection
    ) -> None:
        """An item from a webhook (age as a string, a timestamp as ISO text, an object for
        jsonb) inserts as it is; the row comes back as JSON."""
        out = await run(postgres_server, {"operation": "insert", "table": "people"}, ADA)
        assert out == [
            {
                "id": 1,
                "email": "ada@example.com",
                "name": "Ada",
                "age": 36,
                "score": "99.50",
                "joined": "2026-01-02T03:04:05+00:00",
                "tags": {"role": "admin"},
                "active": True,
            }
        ]
        assert await db.fetchval("SELECT tags->>'role' FROM people") == "admin"

    async def test_execute_query_binds_parameters_and_outputs_rows_paired_with_their_item(
        self, postgres_server: PostgresServer, db: asyncpg.Connection
    ) -> None:
        """$1 is bound per item (never spliced: a quote is data); each row is an item
        descending from the item that asked."""
        await db.execute(
            "INSERT INTO people (email, name, age) VALUES "
            "('a@x', 'A', 20), ('b@x', 'B', 30), ('c@x', 'O''Brien', 40)"
        )
        context = FakeContext(
            items=items({"min": 25}, {"min": 100}, {"min": "O'Brien"}),
            parameters={
                "operation": "execute_query",
                "query": "SELECT name FROM people WHERE age >= $1 OR name = $2 ORDER BY id",
                "query_parameters": per_item(
                    lambda i, _: [
                        i.json["min"] if isinstance(i.json["min"], int) else 1000,
                        str(i.json["min"]),
                    ]
                ),
            },
            credentials={"postgres": credential(postgres_server)},
        )
        result = await run_node(Postgres, context)
        rows = result.outputs["main"]
        assert [(r.json["name"], r.paired[0].index) for r in rows if r.paired] == [
            ("B", 0),
            ("O'Brien", 0),
            ("O'Brien", 2),
        ]

    async def test_a_statement_without_rows_reports_its_command_and_count(
        self, postgres_server: PostgresServer, db: asyncpg.Connection
    ) -> None:
        """UPDATE without RETURNING: one item with the command tag."""
        await db.execute("INSERT INTO people (email) VALUES ('a@x'), ('b@x')")
        out = await run(
            postgres_server,
            {
                "operation": "execute_query",
                "query": "UPDATE people SET age = $1",
                "query_parameters": [7],
            },
        )
        assert out == [{"command": "UPDATE 2", "row_count": 2}]

    async def test_update_upsert_select_and_delete(
        self, postgres_server: PostgresServer, db: asyncpg.Connection
    ) -> None:
        """The statement-building operations, in a row's life."""
        await run(
            postgres_server,
            {"operation": "insert", "table": "people", "returning": []},
            {"email": "a@x", "name": "A", "age": 1},
            {"email": "b@x", "name": "B", "age": 2},
        )
        updated = await run(
            postgres_server,
            {
                "operation": "update",
                "table": "people",
                "values": {"age": 10},
                "where": {"email": "a@x"},
                "returning": ["email", "age"],
            },
        )
        assert updated == [{"email": "a@x", "age": 10}]
        upserted = await run(
            postgres_server,
            {
                "operation": "upsert",
                "table": "people",
                "conflict_columns": ["email"],
                "returning": ["email", "name"],
            },
            {"email": "b@x", "name": "Bee"},
            {"email": "c@x", "name": "C"},
        )
        assert upserted == [{"email": "b@x", "name": "Bee"}, {"email": "c@x", "name": "C"}]
        selected = await run(
            postgres_server,
            {
                "operation": "select",
                "table": "people",
                "columns": ["email"],
                "order_by": ["email desc"],
                "limit": 2,
            },
        )
        assert selected == [{"email": "c@x"}, {"email": "b@x"}]
        nulls = await run(
            postgres_server,
            {
                "operation": "select",
                "table": "people",
                "where": {"age": None},
                "columns": ["email"],
            },
        )
        assert nulls == [{"email": "c@x"}]
        deleted = await run(
            postgres_server,
            {"operation": "delete", "table": "people", "where": {"email": "a@x"}, "returning": []},
        )
        assert deleted == [{"command": "DELETE 1", "row_count": 1}]
        assert await db.fetchval("SELECT count(*) FROM people") == 2

    async def test_select_limit_null_reads_every_row_and_absent_the_default_page(
        self, postgres_server: PostgresServer, db: asyncpg.Connection
    ) -> None:
        """`limit: null` is documented as "all": an explicit null must not become the
        1,000-row default, which an absent `limit` still gets."""
        await db.execute(
            "INSERT INTO people (email) SELECT 'p' || n || '@x' FROM generate_series(1, 1001) n"
        )
        select = {"operation": "select", "table": "people", "columns": ["id"]}
        assert len(await run(postgres_server, {**select, "limit": None})) == 1001
        assert len(await run(postgres_server, select)) == 1000

    async def test_identifiers_are_quoted_not_spliced(
        self, postgres_server: PostgresServer, db: asyncpg.Connection
    ) -> None:
        """A table name carrying SQL is a name that does not exist, nothing more."""
        with pytest.raises(NodeError) as caught:
            await run(
                postgres_server, {"operation": "select", "table": 'people"; DROP TABLE people; --'}
            )
        assert "does not exist" in caught.value.message
        assert "[SQLSTATE 42P01]" in caught.value.message
        assert await db.fetchval("SELECT count(*) FROM people") == 0


class TestErrors:
    async def test_a_constraint_violation_names_the_operation_and_is_not_retried(
        self, postgres_server: PostgresServer, db: asyncpg.Connection
    ) -> None:
        """A duplicate e-mail: 23505 with PostgreSQL's detail."""
        await db.execute("INSERT INTO people (email) VALUES ('a@x')")
        with pytest.raises(NodeError) as caught:
            await run(postgres_server, {"operation": "insert", "table": "people"}, {"email": "a@x"})
        assert caught.value.message.startswith("postgres insert: duplicate key value")
        assert "Key (email)=(a@x) already exists." in caught.value.message
        assert caught.value.retryable is False

    async def test_a_value_of_the_wrong_type_names_the_parameter(
        self, postgres_server: PostgresServer, db: asyncpg.Connection
    ) -> None:
        """ "old" for an integer column: parameter $2 must be an int4."""
        with pytest.raises(NodeError, match=r"parameter \$2 must be a int4"):
            await run(
                postgres_server,
                {"operation": "insert", "table": "people"},
                {"email": "a@x", "age": "old"},
            )

    async def test_an_unknown_role_and_a_closed_port(
        self, postgres_server: PostgresServer, database: str
    ) -> None:
        """A refused login is final; nothing listening may pass on a retry."""
        with pytest.raises(NodeError) as refused:
            await run(
                postgres_server,
                {"operation": "select", "table": "people"},
                cred=credential(postgres_server, user="nobody"),
            )
        assert 'role "nobody" does not exist' in refused.value.message
        assert refused.value.retryable is False
        with pytest.raises(NodeError) as closed:
            await run(
                postgres_server,
                {"operation": "select", "table": "people"},
                cred=credential(postgres_server, port=free_port()),
            )
        assert "postgres select: cannot connect to 127.0.0.1:" in closed.value.message
        assert closed.value.retryable is True

    async def test_a_loopback_host_is_refused_when_the_guard_is_on(
        self, postgres_server: PostgresServer, db: asyncpg.Connection
    ) -> None:
        """The production policy refuses the database on 127.0.0.1 before connecting."""
        with pytest.raises(NodeError) as caught:
            await run(
                postgres_server,
                {"operation": "insert", "table": "people"},
                {"email": "a@x"},
                addresses=HostGuard(AddressPolicy()),
            )
        assert "127.0.0.1 is not allowed (loopback)" in caught.value.message
        assert await db.fetchval("SELECT count(*) FROM people") == 0
        loopback = AddressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
        await run(
            postgres_server,
            {"operation": "insert", "table": "people"},
            {"email": "a@x"},
            addresses=HostGuard(loopback),
        )
        assert await db.fetchval("SELECT count(*) FROM people") == 1

    async def test_the_password_never_comes_from_the_workers_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A credential without a password sends an empty one: the worker's own PGPASSWORD
        (which libpq-style drivers read when none is given) never reaches the host the
        credential names. The host here asks for a cleartext password, as PostgreSQL's
        `password` authentication does, and records what it is sent."""
        monkeypatch.setenv("PGPASSWORD", "the-workers-own-secret")
        received: list[bytes] = []
        server = await asyncio.start_server(partial(_ask_password, received), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        data = {
            "type": "postgres",
            "host": "127.0.0.1",
            "port": port,
            "database": "d",
            "user": "u",
            "sslmode": "disable",
        }
        try:
            with pytest.raises(NodeError, match="password authentication failed"):
                await run_node(
                    Postgres,
                    FakeContext(
                        items=items({}),
                        credentials={"postgres": data},
                        parameters={"operation": "execute_query", "query": "SELECT 1"},
                    ),
                )
        finally:
            server.close()
            await server.wait_closed()
        assert received == [b""]


async def _ask_password(
    received: list[bytes], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """PostgreSQL's wire protocol, as far as a cleartext password request: read the startup
    packet, answer AuthenticationCleartextPassword, keep the PasswordMessage, refuse it."""
    length = struct.unpack("!I", await reader.readexactly(4))[0]
    await reader.readexactly(length - 4)
    writer.write(b"R" + struct.pack("!II", 8, 3))
    await writer.drain()
    kind, size = struct.unpack("!cI", await reader.readexactly(5))
    assert kind == b"p"
    received.append((await reader.readexactly(size - 4)).rstrip(b"\0"))
    fields = b'SFATAL\0C28P01\0Mpassword authentication failed for user "u"\0\0'
    writer.write(b"E" + struct.pack("!I", len(fields) + 4) + fields)
    await writer.drain()
    writer.close()


class TestCredentialCheck:
    async def test_the_check_selects_1(
        self, postgres_server: PostgresServer, database: str
    ) -> None:
        """ok names the database; a missing one is the server's message."""
        assert POSTGRES_CREDENTIAL.check is not None
        ctx = _CheckContext()
        ok = await POSTGRES_CREDENTIAL.check(ctx, credential(postgres_server))
        assert ok == f"connected to {DATABASE} at 127.0.0.1:{postgres_server.port} (SELECT 1)"
        with pytest.raises(NodeError, match='database "no_such_db" does not exist'):
            await POSTGRES_CREDENTIAL.check(ctx, credential(postgres_server, database="no_such_db"))


class _CheckContext:
    timeout_s = 5.0

    def http(self) -> Any:
        raise AssertionError("the postgres check makes no HTTP request")

    async def resolve_host(self, host: str, port: int) -> list[str]:
        return await HostGuard(AddressPolicy(allow_private=True)).resolve(host, port, timeout_s=5)
