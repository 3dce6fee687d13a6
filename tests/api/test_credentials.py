"""`/api/v1/credentials`: typed, masked on every read, merged on update, tested against
real servers on loopback (SMTP, PostgreSQL, an OAuth2 token endpoint, an HTTP API),
and never leaking a secret into a response, the audit trail or the log."""

from __future__ import annotations

import io
import ipaddress
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from fastapi import FastAPI
from sqlalchemy import select

from linkflow.api import create_app
from linkflow.api.container import Container
from linkflow.api.routes import credentials as credentials_routes
from linkflow.observability.logging import configure_logging
from linkflow.security.secretbox import SecretBox
from linkflow.security.ssrf import AddressPolicy, guarded_client
from linkflow.services.credential_resolver import WorkspaceCredentials
from linkflow.services.credentials import Credentials
from linkflow.store import AuditLog
from linkflow.wiring import build_container
from tests._http_server import Recorded, Reply, serve
from tests._services import PostgresServer, free_port
from tests.api._support import Account, api_key, api_settings, join, register, team

MASK = "••••••"
LOOPBACK = "127.0.0.1/32"
"""Checks may reach 127.0.0.1 (the test servers) and nothing else private, e.g. 127.0.0.2."""


@dataclass
class CredApi:
    client: httpx.AsyncClient
    container: Container
    box: SecretBox

    async def create(self, account: Account, body: dict[str, Any], **headers: str) -> Any:
        response = await self.client.post(
            "/api/v1/credentials", json=body, headers={**account.headers, **headers}
        )
        assert response.status_code == 201, response.text
        return response.json()

    def resolver(self, workspace_id: str) -> WorkspaceCredentials:
        return WorkspaceCredentials(
            self.container.database, self.box, uuid.UUID(workspace_id), self.container.http
        )


def _mount(app: FastAPI) -> None:
    """The credentials routes, ahead of the 503 an API-only app answers on plane paths."""
    routes = app.router.routes
    before = len(routes)
    app.include_router(credentials_routes.router)
    added = routes[before:]
    del routes[before:]
    routes[0:0] = added


@pytest.fixture
async def creds(db_url: str, tmp_path: Path) -> AsyncIterator[CredApi]:
    """The app with the credentials router and a service whose checks reach 127.0.0.1 only."""
    settings = api_settings(tmp_path, db_url)
    container = build_container(settings)
    app = create_app(container)
    _mount(app)
    box = SecretBox.from_key(settings.encryption_key_bytes())
    http = guarded_client(allow_private=False, allowed_networks=[LOOPBACK])
    policy = AddressPolicy(allowed_networks=(ipaddress.ip_network(LOOPBACK),))
    service = Credentials(container.database, box, http, policy, check_timeout_s=5.0)
    app.state.plane = SimpleNamespace(credentials=service)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")
    try:
        yield CredApi(client, container, box)
    finally:
        await client.aclose()
        await http.aclose()
        await container.aclose()


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything logged (structlog and the standard library, DEBUG and up) during the test."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    configure_logging(level="debug", json=True, stream=out)
    try:
        yield out
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class TestCreateAndRead:
    async def test_create_answers_201_with_secrets_masked_and_reads_agree(self, creds: CredApi):
        """POST, GET one and GET list show non-secret fields as stored and secrets masked."""
        owner = await register(creds.client)
        created = await creds.create(
            owner,
            {
                "name": "Legacy",
                "type": "basic",
                "data": {"username": "ada", "password": "pw-never-shown"},
            },
        )
        assert created["type"] == "basic"
        assert created["name"] == "Legacy"
        assert created["data"] == {"username": "ada", "password": MASK, "test_url": None}
        assert created["last_used_at"] is None
        assert set(created) == {
            "id",
            "name",
            "type",
            "data",
            "created_at",
            "updated_at",
            "last_used_at",
        }
        one = await creds.client.get(f"/api/v1/credentials/{created['id']}", headers=owner.headers)
        listed = await creds.client.get("/api/v1/credentials", headers=owner.headers)
        assert one.json() == created
        assert listed.json() == {"data": [created], "next_cursor": None}
        for response in (one, listed):
            assert "pw-never-shown" not in response.text

    async def test_defaults_are_filled_in_and_shown(self, creds: CredApi):
        """An api_key without name/in gets X-API-Key in a header; smtp gets port 587."""
        owner = await register(creds.client)
        key = await creds.create(owner, {"name": "k", "type": "api_key", "data": {"value": "v"}})
        assert key["data"] == {"value": MASK, "name": "X-API-Key", "in": "header", "test_url": None}
        smtp = await creds.create(
            owner, {"name": "m", "type": "smtp", "data": {"host": "mail.example.com"}}
        )
        assert smtp["data"] == {
            "host": "mail.example.com",
            "port": 587,
            "username": None,
            "password": None,
            "starttls": True,
        }

    async def test_the_types_endpoint_lists_every_type_with_its_schema(self, creds: CredApi):
        """Each type's JSON Schema names required fields and marks secret ones writeOnly."""
        owner = await register(creds.client)
        response = await creds.client.get("/api/v1/credentials/types", headers=owner.headers)
        assert response.status_code == 200
        types = {item["name"]: item for item in response.json()}
        assert set(types) >= {
            "redis",
            "api_key",
            "bearer",
            "basic",
            "header",
            "query",
            "oauth2",
            "smtp",
            "postgres",
        }
        oauth2 = types["oauth2"]
        assert oauth2["secret_fields"] == ["access_token", "client_secret", "refresh_token"]
        assert oauth2["json_schema"]["required"] == ["client_id", "token_url"]
        assert oauth2["json_schema"]["properties"]["client_secret"]["writeOnly"] is True
        assert oauth2["json_schema"]["additionalProperties"] is False

    async def test_lists_are_paged_by_cursor(self, creds: CredApi):
        """Newest first; a bad cursor is 422."""
        owner = await register(creds.client)
        ids = [
            (
                await creds.create(
                    owner, {"name": f"p{i}", "type": "bearer", "data": {"token": "t"}}
                )
            )["id"]
            for i in range(3)
        ]
        first = (
            await creds.client.get("/api/v1/credentials?limit=2", headers=owner.headers)
        ).json()
        assert [item["id"] for item in first["data"]] == ids[::-1][:2]
        second = await creds.client.get(
            f"/api/v1/credentials?limit=2&cursor={first['next_cursor']}", headers=owner.headers
        )
        assert [item["id"] for item in second.json()["data"]] == ids[:1]
        assert second.json()["next_cursor"] is None
        bad = await creds.client.get("/api/v1/credentials?cursor=nonsense", headers=owner.headers)
        assert bad.status_code == 422
        assert bad.json()["code"] == "invalid_cursor"


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "field", "kind"),
        [
            ({"name": "x", "type": "bearer", "data": {}}, "body.data.token", "missing"),
            (
                {"name": "x", "type": "bearer", "data": {"token": "t", "extra": 1}},
                "body.data.extra",
                "extra",
            ),
            (
                {"name": "x", "type": "smtp", "data": {"host": "h", "port": "25"}},
                "body.data.port",
                "invalid",
            ),
            (
                {"name": "x", "type": "smtp", "data": {"host": "h", "port": 70000}},
                "body.data.port",
                "invalid",
            ),
            (
                {"name": "x", "type": "api_key", "data": {"value": "v", "in": "cookie"}},
                "body.data.in",
                "invalid",
            ),
            (
                {"name": "x", "type": "oauth2", "data": {"client_id": "c", "token_url": "ftp://x"}},
                "body.data.token_url",
                "invalid",
            ),
            (
                {
                    "name": "x",
                    "type": "oauth2",
                    "data": {"client_id": "c", "token_url": "https://x", "expires_at": "tomorrow"},
                },
                "body.data.expires_at",
                "invalid",
            ),
            (
                {"name": "x", "type": "bearer", "data": {"token": MASK}},
                "body.data.token",
                "invalid",
            ),
            (
                {"name": "   ", "type": "bearer", "data": {"token": "t"}},
                "body.name",
                "string_too_short",
            ),
        ],
    )
    async def test_bad_data_is_422_naming_the_field(
        self, creds: CredApi, body: dict[str, Any], field: str, kind: str
    ):
        """Problems name `body.data.<field>` and never echo the value."""
        owner = await register(creds.client)
        response = await creds.client.post("/api/v1/credentials", json=body, headers=owner.headers)
        assert response.status_code == 422, response.text
        problems = response.json()["errors"]
        assert [(p["field"], p["type"]) for p in problems if p["field"] == field] == [(field, kind)]

    async def test_an_unknown_type_is_422(self, creds: CredApi):
        owner = await register(creds.client)
        response = await creds.client.post(
            "/api/v1/credentials",
            json={"name": "x", "type": "kerberos", "data": {}},
            headers=owner.headers,
        )
        assert response.status_code == 422
        assert response.json()["code"] == "unknown_credential_type"
        assert response.json()["errors"][0]["field"] == "body.type"

    async def test_a_taken_name_is_409_until_the_holder_is_deleted(self, creds: CredApi):
        """Names are unique among live credentials of a workspace; other workspaces may reuse."""
        owner, other = await register(creds.client), await register(creds.client)
        body = {"name": "Shared", "type": "bearer", "data": {"token": "t"}}
        first = await creds.create(owner, body)
        again = await creds.client.post("/api/v1/credentials", json=body, headers=owner.headers)
        assert again.status_code == 409
        assert again.json()["code"] == "credential_exists"
        await creds.create(other, body)
        deleted = await creds.client.delete(
            f"/api/v1/credentials/{first['id']}", headers=owner.headers
        )
        assert deleted.status_code == 204
        await creds.create(owner, body)


class TestAccess:
    async def test_another_workspaces_credential_is_404_everywhere(self, creds: CredApi):
        owner, stranger = await register(creds.client), await register(creds.client)
        theirs = await creds.create(
            stranger, {"name": "t", "type": "bearer", "data": {"token": "theirs"}}
        )
        path = f"/api/v1/credentials/{theirs['id']}"
        for method, url, body in (
            ("GET", path, None),
            ("PUT", path, {"name": "mine"}),
            ("DELETE", path, None),
            ("POST", f"{path}/test", None),
        ):
            response = await creds.client.request(method, url, json=body, headers=owner.headers)
            assert response.status_code == 404, (method, url)
            assert response.json()["code"] == "credential_not_found"

    async def test_viewers_cannot_read_and_members_cannot_write(self, creds: CredApi):
        """Read needs credentials:read (members+); write and test need credentials:write."""
        owner, member, viewer = [await register(creds.client) for _ in range(3)]
        workspace = await team(creds.client, owner)
        await join(creds.client, owner, member, workspace, role="member")
        await join(creds.client, owner, viewer, workspace, role="viewer")
        created = await creds.create(
            owner,
            {"name": "c", "type": "bearer", "data": {"token": "t"}},
            **{"X-Workspace-ID": workspace},
        )
        path = f"/api/v1/credentials/{created['id']}"
        body = {"name": "n", "type": "bearer", "data": {"token": "t"}}
        for who, method, url, payload, status in (
            (viewer, "GET", "/api/v1/credentials", None, 403),
            (viewer, "POST", "/api/v1/credentials", body, 403),
            (member, "GET", path, None, 200),
            (member, "POST", "/api/v1/credentials", body, 403),
            (member, "PUT", path, {"name": "renamed"}, 403),
            (member, "DELETE", path, None, 403),
            (member, "POST", f"{path}/test", None, 403),
        ):
            response = await creds.client.request(
                method, url, json=payload, headers=who.in_workspace(workspace)
            )
            assert response.status_code == status, (method, url, response.text)

    async def test_an_api_key_needs_the_credentials_write_scope_to_write(self, creds: CredApi):
        """A key with credentials:read lists but cannot create: 403 insufficient_scope."""
        owner = await register(creds.client)
        key = (await api_key(creds.client, owner, ["credentials:read"]))["key"]
        listed = await creds.client.get("/api/v1/credentials", headers=bearer(key))
        assert listed.status_code == 200
        refused = await creds.client.post(
            "/api/v1/credentials",
            json={"name": "k", "type": "bearer", "data": {"token": "t"}},
            headers=bearer(key),
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "insufficient_scope"
        writer = (await api_key(creds.client, owner, ["credentials:write"]))["key"]
        allowed = await creds.client.post(
            "/api/v1/credentials",
            json={"name": "k", "type": "bearer", "data": {"token": "t"}},
            headers=bearer(writer),
        )
        assert allowed.status_code == 201


class TestUpdate:
    async def test_put_merges_keeping_omitted_and_masked_secrets(self, creds: CredApi):
        """Omitted fields and secrets sent back masked keep their value; sent ones replace;
        null clears an optional field."""
        owner = await register(creds.client)
        created = await creds.create(
            owner,
            {
                "name": "db",
                "type": "postgres",
                "data": {
                    "host": "db.internal",
                    "database": "app",
                    "user": "svc",
                    "password": "pg-secret-1",
                },
            },
        )
        path = f"/api/v1/credentials/{created['id']}"
        resolver = creds.resolver(owner.workspace_id)

        masked_back = {**created["data"], "host": "db2.internal"}
        response = await creds.client.put(path, json={"data": masked_back}, headers=owner.headers)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["host"] == "db2.internal"
        assert (await resolver.resolve("db"))["password"] == "pg-secret-1"

        response = await creds.client.put(
            path, json={"data": {"port": 6432}}, headers=owner.headers
        )
        stored = await resolver.resolve("db")
        assert (stored["port"], stored["host"], stored["password"]) == (
            6432,
            "db2.internal",
            "pg-secret-1",
        )

        response = await creds.client.put(
            path,
            json={"name": "db-main", "data": {"password": "pg-secret-2"}},
            headers=owner.headers,
        )
        assert response.json()["name"] == "db-main"
        assert "pg-secret-2" not in response.text
        assert (await resolver.resolve("db-main"))["password"] == "pg-secret-2"

        response = await creds.client.put(
            path, json={"data": {"password": None}}, headers=owner.headers
        )
        assert response.json()["data"]["password"] is None
        assert "password" not in await resolver.resolve("db-main")

    async def test_put_refuses_a_type_change_a_missing_required_field_and_a_taken_name(
        self, creds: CredApi
    ):
        owner = await register(creds.client)
        created = await creds.create(
            owner, {"name": "one", "type": "bearer", "data": {"token": "t1"}}
        )
        await creds.create(owner, {"name": "two", "type": "bearer", "data": {"token": "t2"}})
        path = f"/api/v1/credentials/{created['id']}"
        for body, status, field in (
            ({"type": "basic"}, 422, "body.type"),
            ({"data": {"token": None}}, 422, "body.data.token"),
            ({"data": {"tokn": "x"}}, 422, "body.data.tokn"),
            ({"name": "two"}, 409, None),
        ):
            response = await creds.client.put(path, json=body, headers=owner.headers)
            assert response.status_code == status, body
            if field:
                assert field in [problem["field"] for problem in response.json()["errors"]]
        assert (await creds.resolver(owner.workspace_id).resolve("one"))["token"] == "t1"


class TestDelete:
    async def test_delete_is_204_then_404_and_the_worker_no_longer_finds_it(self, creds: CredApi):
        owner = await register(creds.client)
        created = await creds.create(
            owner, {"name": "bye", "type": "bearer", "data": {"token": "t"}}
        )
        path = f"/api/v1/credentials/{created['id']}"
        assert (await creds.client.delete(path, headers=owner.headers)).status_code == 204
        assert (await creds.client.get(path, headers=owner.headers)).status_code == 404
        assert (await creds.client.delete(path, headers=owner.headers)).status_code == 404
        with pytest.raises(LookupError):
            await creds.resolver(owner.workspace_id).resolve(created["id"])


class TestSecretsNeverLeak:
    async def test_no_response_audit_row_or_log_line_holds_a_secret(
        self, creds: CredApi, log_output: io.StringIO
    ):
        """Create, read, update, test, delete: grep every answer, the audit table and the log."""
        secrets = ["hdr-secret-value-1", "hdr-secret-value-2", "oauth-client-secret-3"]
        owner = await register(creds.client)
        answers: list[httpx.Response] = []
        created = await creds.create(
            owner, {"name": "h", "type": "header", "data": {"name": "X-Token", "value": secrets[0]}}
        )
        path = f"/api/v1/credentials/{created['id']}"
        answers.append(await creds.client.get(path, headers=owner.headers))
        answers.append(await creds.client.get("/api/v1/credentials", headers=owner.headers))
        answers.append(
            await creds.client.put(
                path, json={"data": {"value": secrets[1]}}, headers=owner.headers
            )
        )
        answers.append(await creds.client.post(f"{path}/test", headers=owner.headers))
        answers.append(
            await creds.client.post(
                "/api/v1/credentials",
                headers=owner.headers,
                json={
                    "name": "o",
                    "type": "oauth2",
                    "data": {
                        "client_id": "c",
                        "client_secret": secrets[2],
                        "token_url": "http://127.0.0.1:9/token",
                        "refresh_token": secrets[0],
                    },
                },
            )
        )
        answers.append(
            await creds.client.post(
                f"/api/v1/credentials/{answers[-1].json()['id']}/test", headers=owner.headers
            )
        )
        answers.append(
            await creds.client.post(
                "/api/v1/credentials",
                headers=owner.headers,
                json={"name": "bad", "type": "bearer", "data": {"token": secrets[2], "x": 1}},
            )
        )
        answers.append(await creds.client.delete(path, headers=owner.headers))
        assert [a.status_code for a in answers] == [200, 200, 200, 200, 201, 200, 422, 204]
        async with creds.container.database.session() as session:
            audit = (
                await session.scalars(
                    select(AuditLog).where(AuditLog.workspace_id == uuid.UUID(owner.workspace_id))
                )
            ).all()
        actions = {row.action for row in audit}
        assert {"credential.created", "credential.updated", "credential.deleted"} <= actions
        updated = next(row for row in audit if row.action == "credential.updated")
        assert updated.new_values is not None
        assert updated.new_values["changed_fields"] == ["value"]
        trail = " ".join(f"{row.old_values} {row.new_values}" for row in audit)
        logged = log_output.getvalue()
        assert "credential" in logged  # the capture works: requests were logged
        for secret in secrets:
            for answer in answers:
                assert secret not in answer.text
            assert secret not in trail
            assert secret not in logged


def token_routes(reply: Reply) -> dict[str, Any]:
    def token(_request: Recorded) -> Reply:
        return reply

    return {"/token": token}


class TestChecks:
    async def test_http_types_check_their_fields_or_call_their_test_url(self, creds: CredApi):
        """Without test_url: structural, ok. With one: 2xx is ok, 401 is ok=false (still 200)."""
        owner = await register(creds.client)

        def whoami(request: Recorded) -> Reply:
            good = request.headers.get("authorization") == "Bearer right-token"
            return Reply.json({"ok": good}, status=200 if good else 401)

        with serve({"/me": whoami}) as server:
            results = []
            for name, token, test_url in (
                ("plain", "t", None),
                ("good", "right-token", server.url("/me")),
                ("bad", "wrong-token", server.url("/me")),
            ):
                data = {"token": token, **({"test_url": test_url} if test_url else {})}
                created = await creds.create(owner, {"name": name, "type": "bearer", "data": data})
                response = await creds.client.post(
                    f"/api/v1/credentials/{created['id']}/test", headers=owner.headers
                )
                assert response.status_code == 200
                results.append(response.json())
        assert [r["ok"] for r in results] == [True, True, False]
        assert "401" in results[2]["message"]
        assert len(server.hits("/me")) == 2

    async def test_a_test_url_at_a_refused_address_fails_the_check(self, creds: CredApi):
        """The SSRF guard applies: 127.0.0.2 is not among the allowed networks here."""
        owner = await register(creds.client)
        created = await creds.create(
            owner,
            {
                "name": "ssrf",
                "type": "query",
                "data": {"name": "key", "value": "v", "test_url": "http://127.0.0.2:9/"},
            },
        )
        response = await creds.client.post(
            f"/api/v1/credentials/{created['id']}/test", headers=owner.headers
        )
        assert response.status_code == 200
        assert response.json()["ok"] is False
        assert "not allowed" in response.json()["message"]

    async def test_smtp_logs_in_to_a_real_server(self, creds: CredApi):
        """aiosmtpd on loopback: the right password is ok, a wrong one and a closed port not."""
        owner = await register(creds.client)
        with smtp_server(login="mailer", password="smtp-secret") as port:
            outcomes = []
            for name, password, at in (
                ("right", "smtp-secret", port),
                ("wrong", "nope", port),
                ("closed", "smtp-secret", free_port()),
            ):
                created = await creds.create(
                    owner,
                    {
                        "name": name,
                        "type": "smtp",
                        "data": {
                            "host": "127.0.0.1",
                            "port": at,
                            "username": "mailer",
                            "password": password,
                            "starttls": False,
                        },
                    },
                )
                response = await creds.client.post(
                    f"/api/v1/credentials/{created['id']}/test", headers=owner.headers
                )
                assert response.status_code == 200
                outcomes.append(response.json())
        assert [o["ok"] for o in outcomes] == [True, False, False], outcomes
        assert "535" in outcomes[1]["message"]
        assert "refused" in outcomes[2]["message"]

    async def test_postgres_connects_and_selects_1(
        self, creds: CredApi, postgres_server: PostgresServer
    ):
        """The session PostgreSQL: ok; a database that does not exist: ok=false."""
        owner = await register(creds.client)
        outcomes = []
        for name, database in (("pg-ok", "postgres"), ("pg-missing", "no_such_db")):
            created = await creds.create(
                owner,
                {
                    "name": name,
                    "type": "postgres",
                    "data": {
                        "host": postgres_server.host,
                        "port": postgres_server.port,
                        "database": database,
                        "user": "postgres",
                        "password": "unused",
                        "sslmode": "disable",
                    },
                },
            )
            response = await creds.client.post(
                f"/api/v1/credentials/{created['id']}/test", headers=owner.headers
            )
            assert response.status_code == 200
            outcomes.append(response.json())
        assert outcomes[0] == {"ok": True, "message": outcomes[0]["message"]}
        assert outcomes[1]["ok"] is False
        assert "no_such_db" in outcomes[1]["message"]

    async def test_oauth2_refreshes_an_expired_token_and_stores_it(self, creds: CredApi):
        """ok=true with the new expiry, which reads show; a refused refresh is ok=false."""
        owner = await register(creds.client)
        expired = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        fresh = Reply.json({"access_token": "a2", "expires_in": 600})
        with serve(token_routes(fresh)) as server:
            created = await creds.create(
                owner,
                {
                    "name": "o",
                    "type": "oauth2",
                    "data": {
                        "client_id": "c",
                        "token_url": server.url("/token"),
                        "access_token": "a1",
                        "refresh_token": "r1",
                        "expires_at": expired,
                    },
                },
            )
            path = f"/api/v1/credentials/{created['id']}"
            response = await creds.client.post(f"{path}/test", headers=owner.headers)
        assert response.json()["ok"] is True
        assert "refreshed" in response.json()["message"]
        shown = (await creds.client.get(path, headers=owner.headers)).json()["data"]
        assert datetime.fromisoformat(shown["expires_at"]) > datetime.now(UTC)
        assert shown["access_token"] == MASK
        resolved = await creds.resolver(owner.workspace_id).resolve("o")
        assert (resolved["access_token"], resolved["refresh_token"]) == ("a2", "r1")

        refused = Reply.json({"error": "invalid_client"}, status=401)
        with serve(token_routes(refused)) as server:
            created = await creds.create(
                owner,
                {
                    "name": "o2",
                    "type": "oauth2",
                    "data": {
                        "client_id": "c",
                        "token_url": server.url("/token"),
                        "refresh_token": "r1",
                    },
                },
            )
            response = await creds.client.post(
                f"/api/v1/credentials/{created['id']}/test", headers=owner.headers
            )
        assert response.status_code == 200
        assert response.json() == {
            "ok": False,
            "message": "the token endpoint refused the refresh (HTTP 401: invalid_client)",
        }


@contextmanager
def smtp_server(*, login: str, password: str) -> Iterator[int]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 with AUTH PLAIN and one account."""

    class Handler:
        async def handle_DATA(self, *_args: Any) -> str:
            return "250 OK"

    def authenticate(*args: Any) -> AuthResult:
        data = args[-1]
        ok = (
            isinstance(data, LoginPassword)
            and data.login == login.encode()
            and data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    port = free_port()
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_require_tls=False,
        auth_exclude_mechanism=["LOGIN"],
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
