"""`linkflow api` as a real process: embedded start, real HTTP, production refusals."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx

from tests.api._server import linkflow_api, run_cli, server_env
from tests.api._support import PASSWORD, new_email


def test_embedded_start_needs_no_configuration_and_serves_real_http(tmp_path: Path) -> None:
    """No database configured: it migrates its SQLite file and serves register and /users/me."""
    with linkflow_api(tmp_path / "data") as server, httpx.Client(base_url=server.url) as client:
        email = new_email()
        registered = client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        token = registered.json()["access_token"]
        me = client.get(
            "/api/v1/users/me",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "e2e-1"},
        )
        assert me.status_code == 200
        assert me.json()["email"] == email
        assert me.headers["x-request-id"] == "e2e-1"
        assert "server" not in me.headers
        assert client.get("/openapi.json").json()["info"]["title"] == "LinkFlow API"
    assert (tmp_path / "data" / "linkflow.db").exists()


def test_it_serves_on_the_module_database(tmp_path: Path, db_url: str) -> None:
    """On a migrated SQLite or PostgreSQL database given by URL, ready and serving."""
    env = {"LINKFLOW_DATABASE_URL": db_url}
    with linkflow_api(tmp_path / "data", env) as server, httpx.Client(base_url=server.url) as c:
        ready = c.get("/health/ready")
        assert ready.json() == {"status": "ok", "checks": {"database": "ok"}}
        assert (
            c.post(
                "/api/v1/auth/login", json={"email": new_email(), "password": "x" * 12}
            ).status_code
            == 401
        )


def test_production_refuses_a_database_that_is_not_migrated(tmp_path: Path) -> None:
    """Exit 2 with one line that says to run `linkflow migrate`."""
    env = server_env(
        tmp_path,
        {
            "LINKFLOW_ENV": "production",
            "LINKFLOW_SECRET_KEY": "p" * 48,
            "LINKFLOW_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode(),
            "LINKFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
        },
    )
    result = run_cli(["api", "--port", "1"], env, tmp_path)
    assert result.returncode == 2
    assert "run `linkflow migrate` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_key_pair_setting_stops_start_up_with_its_name(tmp_path: Path) -> None:
    """RS256 without key files: exit 2 naming LINKFLOW_JWT_PRIVATE_KEY_FILE."""
    env = server_env(tmp_path, {"LINKFLOW_JWT_ALGORITHM": "RS256"})
    result = run_cli(["api", "--port", "1"], env, tmp_path)
    assert result.returncode == 2
    assert "LINKFLOW_JWT_PRIVATE_KEY_FILE" in result.stderr
