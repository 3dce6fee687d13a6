"""`linkflow serve`'s log in production: JSON lines, one per request and one per execution
end, with the ids that join them (request, execution, workspace, trace), and no secret:
neither a credential a run used, nor its sealed form, nor the keys, the password or the
tokens of the session."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests._http_server import Recorded, Reply, serve
from tests._otlp import receiver
from tests.e2e._serve import ADA, Client, Serve, execution_of, poll, register, workflow

TOKEN = "log-drill-token-93be51d0"
SECRET_KEY = "k" * 48
ENCRYPTION_KEY = base64.b64encode(os.urandom(32)).decode()


def checked(request: Recorded) -> Reply:
    if request.headers.get("authorization") != f"Bearer {TOKEN}":
        return Reply.json({"error": "bad token"}, 401)
    return Reply.json({"ok": True})


def forms(value: str | bytes) -> list[str]:
    """`value` as a log line could hold it: itself, base64 (both alphabets), hex."""
    raw = value.encode() if isinstance(value, str) else value
    found = [base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(), raw.hex()]
    if isinstance(value, str):
        found.append(value)
    return found


def test_json_lines_carry_the_ids_and_no_secret(tmp_path: Path) -> None:
    """Production serve (JSON by default) at DEBUG, tracing to a receiver: a run that uses
    a bearer credential and the credential's test. Every log line is a JSON object; the
    request's line has its request id, workspace id and trace id; the execution's end
    line has its execution id, workspace id, trace id and status; the whole log holds
    none of the token, the credential's ciphertext, the keys, the password or the
    session's tokens, in any encoding."""
    settings = {"LINKFLOW_ENV": "production", "LINKFLOW_SECRET_KEY": SECRET_KEY,
                "LINKFLOW_ENCRYPTION_KEY": ENCRYPTION_KEY, "LINKFLOW_LOG_LEVEL": "debug",
                "LINKFLOW_HTTP_ALLOW_PRIVATE": "true"}  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "LINKFLOW_DATA_DIR": str(tmp_path), **settings}
    migrated = subprocess.run([sys.executable, "-m", "linkflow", "migrate"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr  # production: migrated beforehand
    with serve({"/v1/check": checked}) as remote, receiver() as otlp:
        server = Serve(tmp_path, LINKFLOW_OTLP_ENDPOINT=otlp.endpoint, **settings)
        server.start()
        try:
            client = Client(server)
            register(client)
            credential = client.ok("POST", "/api/v1/credentials", 201, json={
                "name": "remote", "type": "bearer",
                "data": {"token": TOKEN, "test_url": remote.url("/v1/check")},
            })  # fmt: skip
            assert client.ok("POST", f"/api/v1/credentials/{credential['id']}/test")["ok"]
            flow = workflow(client, {
                "name": "uses the credential",
                "nodes": [{"id": "start", "type": "manual"},
                          {"id": "call", "type": "http_request",
                           "parameters": {"url": remote.url("/v1/check"), "auth": "auth"},
                           "credentials": {"auth": credential["id"]}}],
                "connections": [{"from": "start", "to": "call"}],
            })  # fmt: skip
            started = execute(client, flow["id"], request_id="log-drill-request-1")
            done = execution_of(client, started["id"], "completed", "failed")
            assert done["status"] == "completed", done
            (workspace,) = client.listed("/api/v1/workspaces")
            workspace_id = workspace["id"]
            log = server.log

            def ended() -> dict[str, Any] | None:
                return next((line for line in lines(log) if line.get("event") ==
                             "execution.finished" and line.get("execution_id") ==
                             started["id"]), None)  # fmt: skip

            end = poll(ended, "the execution's end line")
        finally:
            server.stop()
        assert remote.hits("/v1/check")  # the token really went out
    text = log.read_text()
    records = lines(log)
    others = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
    assert others == [f"LinkFlow is running at {server.url}  (API docs: {server.url}/docs)"]

    (request,) = [r for r in records if r.get("event") == "request"
                  and r.get("request_id") == "log-drill-request-1"]  # fmt: skip
    assert request["workspace_id"] == workspace_id
    assert len(request["trace_id"]) == 32
    assert (request["method"], request["status"]) == ("POST", 202)
    assert end["workspace_id"] == workspace_id
    assert end["status"] == "completed"
    assert end["workflow_id"] == flow["id"]
    assert len(end["trace_id"]) == 32

    with sqlite3.connect(tmp_path / "linkflow.db") as database:
        (sealed,) = database.execute("SELECT data_encrypted FROM credentials").fetchone()
        (hashed,) = database.execute("SELECT password_hash FROM users").fetchone()
    # The ciphertext also as Python would print bytes (a driver's DEBUG line did).
    secrets: list[str | bytes] = [TOKEN, f"Bearer {TOKEN}", sealed, sealed[-32:],
                                  repr(sealed[-16:])[2:-1], SECRET_KEY, ENCRYPTION_KEY,
                                  ADA["password"], hashed, client.token]  # fmt: skip
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, f"{form[:12]}... is in the log"


def execute(client: Client, workflow_id: str, *, request_id: str) -> Any:
    """Start a run of `workflow_id`, the request carrying `request_id`."""
    path = f"/api/v1/workflows/{workflow_id}/execute"
    response = httpx.post(f"{client.server.url}{path}", json={}, timeout=30,
                          headers={"Authorization": f"Bearer {client.token}",
                                   "X-Request-ID": request_id})  # fmt: skip
    assert response.status_code == 202, response.text
    return response.json()


def lines(log: Path) -> list[dict[str, Any]]:
    """The JSON objects of the log (each line that is one must parse)."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
