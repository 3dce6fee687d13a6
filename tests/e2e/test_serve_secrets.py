"""Secrets stay out of what `linkflow serve` writes.

Regression test of issue 13: `query` and `api_key` credentials appeared in the
server log, through httpx's ``HTTP Request: GET ...?apikey=...`` line.
"""

from __future__ import annotations

import base64
import itertools
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests._http_server import Recorded, Reply, serve
from tests.e2e._serve import Client, Serve, execution_of, register, workflow

SECRETS = {
    "api_key": {"value": "key-in-query-7f3a9c", "name": "apikey", "in": "query"},
    "query": {"value": "token-in-query-2b8e41", "name": "token"},
    "bearer": {"token": "bearer-token-5d0c6e"},
    "basic": {"username": "ada", "password": "basic-password-9a1f27"},
}


def secret_forms(value: str) -> list[str]:
    """`value` as it could appear: itself, URL-encoded, base64 (alone and in Basic auth)."""
    return [value, quote(value, safe=""), base64.b64encode(value.encode()).decode(),
            base64.b64encode(f"ada:{value}".encode()).decode()]  # fmt: skip


def echo(request: Recorded) -> Reply:
    return Reply.json(
        {"query": request.query, "authorization": request.headers.get("authorization")}
    )


@pytest.mark.parametrize("log_level", ["info", "debug"])
def test_credentials_sent_by_http_request_nodes_appear_nowhere_in_the_log(
    tmp_path: Path, log_level: str
) -> None:
    """Four HTTP request nodes, each with a credential (two in the query string, one bearer,
    one basic), call a loopback server; serve's output, at INFO or DEBUG, holds none of the
    credentials' values, in any encoding, while the calls did carry them."""
    with serve({"/v1/things": echo}) as remote:
        server = Serve(tmp_path, LINKFLOW_HTTP_ALLOW_PRIVATE="true", LINKFLOW_LOG_LEVEL=log_level)
        server.start()
        try:
            client = Client(server)
            register(client)
            nodes: list[dict[str, Any]] = [{"id": "start", "type": "manual"}]
            for kind, data in SECRETS.items():
                created = client.ok("POST", "/api/v1/credentials", 201,
                                    json={"name": kind, "type": kind, "data": data})  # fmt: skip
                nodes.append({
                    "id": f"call_{kind}", "type": "http_request",
                    "parameters": {"url": remote.url("/v1/things?page=1"), "auth": "auth"},
                    "credentials": {"auth": created["id"]},
                })  # fmt: skip
            ids = [node["id"] for node in nodes]
            connections = [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]
            doc = {"name": "Calls with secrets", "nodes": nodes, "connections": connections}
            flow = workflow(client, doc)
            queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
            done = execution_of(client, queued["id"], "completed", "failed")
        finally:
            server.stop()
    assert done["status"] == "completed", done
    sent = [(r.query, r.headers.get("authorization")) for r in remote.hits("/v1/things")]
    assert sent[0][0]["apikey"] == ["key-in-query-7f3a9c"]
    assert sent[1][0]["token"] == ["token-in-query-2b8e41"]
    assert sent[2][1] == "Bearer bearer-token-5d0c6e"
    log = server.log.read_text()
    for data in SECRETS.values():
        secret = data.get("value") or data.get("token") or data["password"]
        for form in secret_forms(secret):
            assert form not in log, f"{form!r} is in serve's output"
