"""The integration nodes under `linkflow serve`, with credentials stored through the API:
Redis, PostgreSQL and SMTP servers of the test session on loopback, a node package
installed beside LinkFlow, and the SSRF guard refusing loopback when it is on."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
import redis

from tests._plugins import write_plugins
from tests._services import (
    MARIADB_PASSWORD,
    MARIADB_USER,
    MariaDBServer,
    PostgresServer,
    RedisServer,
)
from tests._smtp import smtp_sink
from tests.e2e._serve import Client, Serve, execution_of, register, workflow

DB = 8  # a Redis database of these tests' own
USER, PASSWORD = "serve-nodes", "serve-redis-pa55word"
PG_DATABASE = "serve_integrations"
ENDED = ("completed", "failed", "cancelled", "timeout")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One serve for the module: loopback allowed (the servers are local), the example
    node packages on its PYTHONPATH."""
    base = tmp_path_factory.mktemp("serve-integrations")
    site = write_plugins(base / "site")
    server = Serve(base, LINKFLOW_HTTP_ALLOW_PRIVATE="true", PYTHONPATH=str(site))
    server.start()
    try:
        client = Client(server)
        register(client)
        yield client
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_user(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis(port=redis_server.port, db=DB) as admin:
        admin.acl_setuser(USER, enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"],
                          channels=["*"], commands=["+@all"])  # fmt: skip
        admin.flushdb()
        yield admin
        admin.acl_deluser(USER)


@pytest.fixture(scope="module")
async def pg_database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    admin = await asyncpg.connect(postgres_server.url())
    await admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE}")
    await admin.execute(f"CREATE DATABASE {PG_DATABASE}")
    target = await asyncpg.connect(postgres_server.url(PG_DATABASE))
    await target.execute("CREATE TABLE orders (id text PRIMARY KEY, total numeric, "
                         "placed timestamptz)")  # fmt: skip
    await target.close()
    yield PG_DATABASE
    await admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
    await admin.close()


def store(client: Client, name: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    created = client.ok("POST", "/api/v1/credentials", 201,
                        json={"name": name, "type": type_, "data": data})  # fmt: skip
    return dict(created)


def checked(client: Client, credential: dict[str, Any]) -> dict[str, Any]:
    return dict(client.ok("POST", f"/api/v1/credentials/{credential['id']}/test"))


def run(client: Client, nodes: list[dict[str, Any]], input_: Any) -> dict[str, Any]:
    """A manual trigger, then `nodes` in a chain; the ended execution."""
    chain = [{"id": "start", "type": "manual"}, *nodes]
    doc = {
        "name": f"flow {nodes[0]['id']}",
        "nodes": chain,
        "connections": [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(chain)],
    }
    flow = workflow(client, doc)
    started = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 200,
                        json={"input": input_, "wait": True})  # fmt: skip
    return execution_of(client, started["id"], *ENDED)


def logs_text(client: Client, execution_id: str) -> str:
    return client.call("GET", f"/api/v1/executions/{execution_id}/logs").text


class TestRedis:
    def test_a_workflow_sets_and_reads_keys_with_a_stored_credential(
        self, served: Client, redis_server: RedisServer, redis_user: redis.Redis
    ) -> None:
        """The credential tests by PING and reads back masked; the workflow incr's a
        counter per item and reads it; the history never holds the password."""
        credential = store(served, "cache", "redis", {
            "host": "127.0.0.1", "port": redis_server.port, "database": DB,
            "username": USER, "password": PASSWORD,
        })  # fmt: skip
        assert credential["data"]["password"] == "••••••"
        assert checked(served, credential) == {
            "ok": True,
            "message": f"PING answered by 127.0.0.1:{redis_server.port} (database {DB})",
        }
        done = run(served, [
            {"id": "count", "type": "redis", "credentials": {"redis": "cache"},
             "parameters": {"operation": "incr", "key": "{{ 'visits:' ~ json.page }}"}},
            {"id": "read", "type": "redis", "credentials": {"redis": credential["id"]},
             "parameters": {"operation": "get", "key": "{{ 'visits:' ~ json.page }}",
                            "output_field": "stored"}},
        ], [{"page": "home"}, {"page": "home"}, {"page": "about"}])  # fmt: skip
        assert done["status"] == "completed", done["error"]
        assert [(i["value"], i["stored"]) for i in done["output"]] == [(1, "2"), (2, "2"), (1, "1")]
        assert redis_user.get("visits:home") == b"2"
        assert PASSWORD not in logs_text(served, done["id"])

    def test_a_wrong_password_fails_the_node_naming_the_operation(
        self, served: Client, redis_server: RedisServer, redis_user: redis.Redis
    ) -> None:
        """The test says so, and so does the failed execution; neither quotes the password."""
        credential = store(served, "bad-cache", "redis", {
            "host": "127.0.0.1", "port": redis_server.port, "username": USER,
            "password": "not-the-password"})  # fmt: skip
        result = checked(served, credential)
        assert result["ok"] is False
        assert "refused the login" in result["message"]
        done = run(served, [{"id": "get", "type": "redis", "credentials": {"redis": "bad-cache"},
                             "parameters": {"operation": "get", "key": "k"}}], {})  # fmt: skip
        assert done["status"] == "failed"
        assert done["error"]["message"] == "redis get on 'k': the server refused the login"
        assert "not-the-password" not in logs_text(served, done["id"])


class TestPostgres:
    def test_a_workflow_upserts_items_and_selects_them(
        self, served: Client, postgres_server: PostgresServer, pg_database: str
    ) -> None:
        """Items from the execution's input go in as rows (a repeat updates), then come out."""
        store(served, "shop", "postgres", {
            "host": postgres_server.host, "port": postgres_server.port, "database": pg_database,
            "user": "postgres", "password": "pg-secret-value", "sslmode": "disable"})  # fmt: skip
        orders = [
            {"id": "A1", "total": "10.50", "placed": "2026-03-01T10:00:00Z"},
            {"id": "B2", "total": 7, "placed": "2026-03-02T11:00:00Z"},
            {"id": "A1", "total": "12.00", "placed": "2026-03-01T10:00:00Z"},
        ]
        done = run(served, [
            {"id": "save", "type": "postgres", "credentials": {"postgres": "shop"},
             "parameters": {"operation": "upsert", "table": "orders",
                            "conflict_columns": ["id"], "returning": ["id", "total"]}},
            {"id": "report", "type": "postgres", "credentials": {"postgres": "shop"},
             "parameters": {"operation": "execute_query",
                            "query": "SELECT id, total FROM orders WHERE total > $1 ORDER BY id",
                            "query_parameters": ["{{ json.total }}"]}},
        ], orders)  # fmt: skip
        assert done["status"] == "completed", done["error"]
        nodes = {n["node_id"]: n for n in done["nodes"]}
        assert nodes["save"]["items_out"] == 3
        # The report ran once per saved row, for totals above 10.50, 7 and 12.00: the
        # stored A1 (12.00 since the repeat) twice, then nothing.
        assert [(r["id"], r["total"]) for r in done["output"]] == [("A1", "12.00")] * 2
        assert "pg-secret-value" not in logs_text(served, done["id"])

    def test_the_credential_test_selects_1_and_names_a_missing_database(
        self, served: Client, postgres_server: PostgresServer, pg_database: str
    ) -> None:
        """ok, then ok=false with PostgreSQL's message."""
        base = {
            "host": postgres_server.host,
            "port": postgres_server.port,
            "user": "postgres",
            "sslmode": "disable",
        }
        good = store(served, "pg-ok", "postgres", {**base, "database": pg_database})
        bad = store(served, "pg-missing", "postgres", {**base, "database": "no_such_db"})
        assert checked(served, good)["ok"] is True
        result = checked(served, bad)
        assert result["ok"] is False
        assert 'database "no_such_db" does not exist' in result["message"]


class TestMySql:
    def test_a_workflow_inserts_items_and_reads_them_back(
        self, served: Client, mariadb_server: MariaDBServer
    ) -> None:
        """The credential tests by SELECT 1 and reads back masked; rows go in and out."""
        import pymysql  # type: ignore[import-untyped]

        with pymysql.connect(
            host="127.0.0.1",
            port=mariadb_server.port,
            user=MARIADB_USER,
            password=MARIADB_PASSWORD,
            autocommit=True,
        ) as admin, admin.cursor() as cursor:
            cursor.execute("SET sql_notes = 0")
            cursor.execute("DROP DATABASE IF EXISTS serve_mysql")
            cursor.execute("CREATE DATABASE serve_mysql")
            cursor.execute(
                "CREATE TABLE serve_mysql.signups (email varchar(100) PRIMARY KEY,"
                " plan varchar(20))"
            )
        credential = store(
            served,
            "crm",
            "mysql",
            {
                "host": "127.0.0.1",
                "port": mariadb_server.port,
                "database": "serve_mysql",
                "user": MARIADB_USER,
                "password": MARIADB_PASSWORD,
            },
        )
        assert credential["data"]["password"] == "••••••"
        assert checked(served, credential)["ok"] is True
        done = run(
            served,
            [
                {
                    "id": "save",
                    "type": "mysql",
                    "credentials": {"mysql": "crm"},
                    "parameters": {
                        "operation": "upsert",
                        "table": "signups",
                        "values": {"email": "{{ json.email }}", "plan": "{{ json.plan }}"},
                    },
                },
                {
                    "id": "read",
                    "type": "mysql",
                    "credentials": {"mysql": "crm"},
                    "parameters": {
                        "operation": "select",
                        "table": "signups",
                        "where": {"plan": "pro"},
                        "order_by": ["email"],
                    },
                },
            ],
            [{"email": "a@x", "plan": "free"}, {"email": "a@x", "plan": "pro"}],
        )
        assert done["status"] == "completed", done["error"]
        assert done["output"] == [{"email": "a@x", "plan": "pro"}] * 2
        assert MARIADB_PASSWORD not in logs_text(served, done["id"])


class TestSmtp:
    def test_an_uploaded_file_is_mailed_as_an_attachment(self, served: Client) -> None:
        """A webhook receives a file (a binary item); the smtp node sends it on."""
        with smtp_sink() as (inbox, port):
            store(served, "mail", "smtp", {"host": "127.0.0.1", "port": port,
                                           "starttls": False})  # fmt: skip
            doc = {"name": "mail uploads", "nodes": [
                {"id": "hook", "type": "webhook",
                 "parameters": {"path": "mail", "response_mode": "last_node"}},
                {"id": "send", "type": "smtp", "credentials": {"smtp": "mail"},
                 "parameters": {"from_address": "flows@example.com",
                                "to": "{{ json.body.to }}", "subject": "Your file",
                                "text": "Attached.", "attachments": ["*"]}},
            ], "connections": [{"from": "hook", "to": "send"}]}  # fmt: skip
            flow = workflow(served, doc, activate=True)
            (hook,) = flow["webhooks"]
            answer = httpx.post(
                hook["url"],
                data={"to": "ada@example.com"},
                timeout=30,
                files={"doc": ("notes.txt", b"hello file", "text/plain")},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["accepted"] == ["ada@example.com"]
            [message] = inbox.messages
        assert message["To"] == "ada@example.com"
        files = [p for p in message.walk() if p.get_filename()]
        assert [(p.get_filename(), p.get_payload(decode=True)) for p in files] == [
            ("notes.txt", b"hello file")
        ]
        assert message["Message-ID"] == answer.json()["message_id"]


class TestNodePackages:
    def test_an_installed_package_adds_its_node_and_a_broken_one_is_logged(
        self, served: Client
    ) -> None:
        """`greeting` is in the catalogue and runs with its own credential type; the
        broken package's entries are in serve's log by name, and the server runs on."""
        nodes = {n["type"] for n in served.ok("GET", "/api/v1/nodes")}
        assert {"greeting", "redis", "postgres", "smtp"} <= nodes
        types = {t["name"] for t in served.ok("GET", "/api/v1/credentials/types")}
        assert {"greeting_key", "redis", "postgres", "smtp"} <= types
        store(served, "signer", "greeting_key", {"sender": "LinkFlow", "key": "k-123456"})
        done = run(
            served,
            [{"id": "greet", "type": "greeting", "credentials": {"sender": "signer"}}],
            {"name": "Ada"},
        )
        assert done["output"] == [{"name": "Ada", "greeting": "Hello Ada, from LinkFlow"}]
        log = Path(served.server.log).read_text()
        assert "nodes.plugin_skipped" in log
        assert "lf-plugin-broken" in log
        assert "crash = lf_plugin_crash" in log


def test_the_guard_refuses_loopback_databases_unless_allowed(
    tmp_path: Path, postgres_server: PostgresServer, redis_server: RedisServer
) -> None:
    """Without LINKFLOW_HTTP_ALLOW_PRIVATE, a node and a credential test aimed at
    127.0.0.1 are refused before connecting, with the setting named."""
    server = Serve(tmp_path)
    server.start()
    try:
        client = Client(server)
        register(client)
        pg = store(client, "pg", "postgres", {
            "host": "127.0.0.1", "port": postgres_server.port, "database": "postgres",
            "user": "postgres", "sslmode": "disable"})  # fmt: skip
        result = checked(client, pg)
        assert result["ok"] is False
        assert "127.0.0.1 is not allowed (loopback)" in result["message"]
        store(client, "cache", "redis", {"host": "127.0.0.1", "port": redis_server.port})
        done = run(client, [{"id": "get", "type": "redis", "credentials": {"redis": "cache"},
                             "parameters": {"operation": "get", "key": "k"}}], {})  # fmt: skip
        assert done["status"] == "failed"
        assert "127.0.0.1 is not allowed (loopback)" in done["error"]["message"]
        assert "LINKFLOW_HTTP_ALLOW_PRIVATE=true" in done["error"]["message"]
    finally:
        server.stop()
