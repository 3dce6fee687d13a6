"""Secrets stay out of what `linkflow serve` writes and answers.

Regression tests of issue 13: `query` and `api_key` credentials appeared in the
server log, through httpx's ``HTTP Request: GET ...?apikey=...`` line; and when
a remote server echoed the request, credential values appeared in node error
messages that every viewer of the workspace reads.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import pytest

from tests._http_server import Recorded, Reply, TestServer, serve
from tests.e2e._serve import Client, Serve, execution_of, register, workflow

# The query-string values hold characters that URL encoding changes, so that the
# encoded forms are checked too.
SECRETS: dict[str, dict[str, str]] = {
    "api_key": {"value": "key+in/query=7f3a9c", "name": "apikey", "in": "query"},
    "query": {"value": "token in query&2b8e41", "name": "token"},
    "bearer": {"token": "bearer-token-5d0c6e"},
    "basic": {"username": "ada", "password": "basic-password-9a1f27"},
}


def secret_of(data: dict[str, str]) -> str:
    return data.get("value") or data.get("token") or data["password"]


def secret_forms(value: str) -> list[str]:
    """`value` as it could appear: itself, URL-encoded, base64 (alone and in Basic auth)."""
    return [value, quote(value, safe=""), quote_plus(value),
            base64.b64encode(value.encode()).decode(),
            base64.b64encode(f"ada:{value}".encode()).decode()]  # fmt: skip


def assert_no_secret_in(text: str, where: str) -> None:
    for data in SECRETS.values():
        for form in secret_forms(secret_of(data)):
            assert form not in text, f"{form!r} is in {where}"


def echo(status: int) -> Callable[[Recorded], Reply]:
    """A route answering `status` with the request's Authorization header and query string:
    what a remote API's error page that quotes the request does."""

    def route(request: Recorded) -> Reply:
        return Reply.json({"authorization": request.headers.get("authorization"),
                           "query": urlencode(request.query, doseq=True)}, status)  # fmt: skip

    return route


@dataclass
class Run:
    server: Serve
    remote: TestServer
    client: Client
    execution: dict[str, Any]


@contextmanager
def run_with_secrets(tmp_path: Path, *, status: int = 200, **settings: str) -> Iterator[Run]:
    """Serve runs one HTTP request node per credential of `SECRETS` (on_error: continue, so
    all run) against a loopback server answering `status`; serve is stopped after."""
    with serve({"/v1/things": echo(status)}) as remote:
        server = Serve(tmp_path, LINKFLOW_HTTP_ALLOW_PRIVATE="true", **settings)
        server.start()
        try:
            client = Client(server)
            register(client)
            nodes: list[dict[str, Any]] = [{"id": "start", "type": "manual"}]
            for kind, data in SECRETS.items():
                created = client.ok("POST", "/api/v1/credentials", 201,
                                    json={"name": kind, "type": kind, "data": data})  # fmt: skip
                nodes.append({
                    "id": f"call_{kind}", "type": "http_request", "on_error": "continue",
                    "parameters": {"url": remote.url("/v1/things?page=1"), "auth": "auth"},
                    "credentials": {"auth": created["id"]},
                })  # fmt: skip
            ids = [node["id"] for node in nodes]
            connections = [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]
            doc = {"name": "Calls with secrets", "nodes": nodes, "connections": connections}
            flow = workflow(client, doc)
            queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
            done = execution_of(client, queued["id"], "completed", "failed")
            yield Run(server, remote, client, done)
        finally:
            server.stop()


@pytest.mark.parametrize("log_level", ["info", "debug"])
def test_credentials_sent_by_http_request_nodes_appear_nowhere_in_the_log(
    tmp_path: Path, log_level: str
) -> None:
    """Four HTTP request nodes, each with a credential (two in the query string, one bearer,
    one basic), call a loopback server; serve's output, at INFO or DEBUG, holds none of the
    credentials' values, in any encoding, while the calls did carry them."""
    with run_with_secrets(tmp_path, LINKFLOW_LOG_LEVEL=log_level) as run:
        assert run.execution["status"] == "completed", run.execution
        sent = [(r.query, r.headers.get("authorization")) for r in run.remote.hits("/v1/things")]
    assert sent[0][0]["apikey"] == [SECRETS["api_key"]["value"]]
    assert sent[1][0]["token"] == [SECRETS["query"]["value"]]
    assert sent[2][1] == "Bearer bearer-token-5d0c6e"
    assert_no_secret_in(run.server.log.read_text(), "serve's output")


def test_a_remote_echoing_the_request_puts_no_credential_in_node_errors(tmp_path: Path) -> None:
    """The remote answers 400 quoting the Authorization header and the query string it got;
    each node's error (in the execution, its node list and its history) shows the excerpt
    with `[redacted]` where the credential was, in no encoding the secret itself."""
    with run_with_secrets(tmp_path, status=400) as run:
        execution_id = run.execution["id"]
        shown = json.dumps(run.client.ok("GET", f"/api/v1/executions/{execution_id}"))
        history = json.dumps(run.client.listed(f"/api/v1/executions/{execution_id}/logs"))
        log = run.server.log.read_text()
    errors = [node["error"] for node in run.execution["nodes"] if node["error"]]
    assert len(errors) == len(SECRETS), run.execution
    assert all("HTTP 400" in json.dumps(error) for error in errors), errors
    assert all("[redacted]" in json.dumps(error) for error in errors), errors
    for text, where in ((shown, "the execution"), (history, "the history"), (log, "the log")):
        assert_no_secret_in(text, where)
