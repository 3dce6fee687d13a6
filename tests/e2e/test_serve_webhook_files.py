"""Files uploaded to a webhook under `linkflow serve` are binary items in the blob store
(issue 14, item 1: a multipart call's files reached the workflow inline, as base64 in the
execution's input)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import httpx

from tests._http_server import Recorded, Reply, form_parts, serve
from tests.e2e._serve import Client, Serve, register, workflow

LIMIT = 2 * 1024 * 1024


def upload_flow(forward_to: str) -> dict[str, Any]:
    """A webhook whose file `report` an http_request node sends on, as a multipart part
    `document` beside the caller's `note` field; the remote's answer is the webhook's."""
    return {
        "name": "Forward uploads",
        "nodes": [
            {"id": "hook", "type": "webhook",
             "parameters": {"path": "upload", "response_mode": "last_node",
                            "max_body_bytes": LIMIT}},
            {"id": "forward", "type": "http_request",
             "parameters": {"method": "POST", "url": forward_to, "body_type": "multipart",
                            "body": {"note": "{{ json.body.note }}"},
                            "files": {"document": "report"}}},
        ],
        "connections": [{"from": "hook", "to": "forward"}],
    }  # fmt: skip


def blob_file(server: Serve, data: bytes) -> Path:
    """Where the default (filesystem) blob store keeps `data`."""
    digest = hashlib.sha256(data).hexdigest()
    return server.data_dir / "blobs" / digest[:2] / digest[2:4] / digest


def stored(request: Recorded) -> Reply:
    return Reply.json({"stored": len(request.body)})


def test_an_uploaded_file_reaches_the_next_node_from_the_blob_store(tmp_path: Path) -> None:
    """`curl -F note=quarterly -F 'report=@q3 report.pdf;type=application/pdf'`: the file
    is stored in the blob store, the webhook's item carries it as `binary.report` (name,
    type, size, ref), and an http_request node sends exactly those bytes, that name and
    that type on. The execution's input holds the ref and the metadata, not the bytes."""
    document = os.urandom(600 * 1024)
    with serve({"/store": stored}) as remote:
        server = Serve(tmp_path, LINKFLOW_HTTP_ALLOW_PRIVATE="true")
        server.start()
        try:
            client = Client(server)
            register(client)
            flow = workflow(client, upload_flow(remote.url("/store")), activate=True)
            (hook,) = flow["webhooks"]
            answer = httpx.post(
                hook["url"], data={"note": "quarterly"},
                files={"report": ("q3 report.pdf", document, "application/pdf")}, timeout=30,
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
            (sent,) = remote.hits("/store")
            assert answer.json() == {"stored": len(sent.body)}
            parts = form_parts(sent)
            assert parts["document"] == ("q3 report.pdf", "application/pdf", document)
            assert parts["note"][2] == b"quarterly"

            assert blob_file(server, document).read_bytes() == document
            (run,) = client.listed("/api/v1/executions", workflow_id=flow["id"])
            detail = client.call("GET", f"/api/v1/executions/{run['id']}")
            execution = detail.json()
            assert execution["input"]["body"] == {"note": "quarterly"}
            assert execution["input"]["binary"] == {
                "report": {"ref": f"sha256:{hashlib.sha256(document).hexdigest()}",
                           "size": len(document), "mime_type": "application/pdf",
                           "file_name": "q3 report.pdf"},
            }  # fmt: skip
            assert len(detail.content) < 20_000
            assert base64.b64encode(document[:3000]).decode()[:1000] not in detail.text
        finally:
            server.stop()


def test_a_file_over_the_body_limit_is_413_and_stores_nothing(tmp_path: Path) -> None:
    """The webhook's body limit bounds uploads: a bigger file is 413 before anything is
    parsed or stored, and no execution starts."""
    with serve({"/store": stored}) as remote:
        server = Serve(tmp_path, LINKFLOW_HTTP_ALLOW_PRIVATE="true")
        server.start()
        try:
            client = Client(server)
            register(client)
            flow = workflow(client, upload_flow(remote.url("/store")), activate=True)
            (hook,) = flow["webhooks"]
            document = os.urandom(LIMIT + 1)
            answer = httpx.post(hook["url"], files={"report": ("big.bin", document)}, timeout=30)
            assert answer.status_code == 413, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert not blob_file(server, document).exists()
            assert client.listed("/api/v1/executions", workflow_id=flow["id"]) == []
            assert remote.hits("/store") == []
        finally:
            server.stop()
