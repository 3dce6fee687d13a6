"""Blobs in S3 under `linkflow serve`: a process on another machine (another data dir,
the same database) replays a node output that was offloaded by the first."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import boto3
import httpx

from tests.e2e._serve import ADA, Client, Serve, execution_of, register, workflow

KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def test_a_second_machine_replays_an_output_offloaded_to_s3(
    tmp_path: Path, s3_endpoint: str
) -> None:
    """serve A runs a node whose output is over the blob threshold, then waits; A stops.
    serve B, with an empty data dir of its own, resumes the execution: replaying A's
    history reads the output back from the bucket, so the node after the wait sees it."""
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **KEYS)
    s3.create_bucket(Bucket="linkflow-e2e")
    shared = {
        "LINKFLOW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        "LINKFLOW_SECRET_KEY": "s" * 40,
        "LINKFLOW_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "LINKFLOW_BLOB_URL": "s3://linkflow-e2e/runs",
        "LINKFLOW_BLOB_S3_ENDPOINT": s3_endpoint,
        "LINKFLOW_BLOB_S3_ACCESS_KEY_ID": "testing",
        "LINKFLOW_BLOB_S3_SECRET_ACCESS_KEY": "testing",
        "LINKFLOW_BLOB_THRESHOLD_BYTES": "1024",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Serve(tmp_path / "a", **shared)
    first.start()
    try:
        client = Client(first)
        register(client)
        doc = {
            "name": "big then wait",
            "nodes": [
                {"id": "start", "type": "manual"},
                {"id": "big", "type": "set",
                 "parameters": {"fields": {"text": "{{ 'x' * 5000 }}"}}},
                {"id": "link", "type": "set",
                 "parameters": {"fields": {"url": "{{ execution.resume_url }}"}}},
                {"id": "approval", "type": "wait", "parameters": {"resume": "webhook"}},
                {"id": "after", "type": "set",
                 "parameters": {"fields": {"size": "{{ node['big'].json.text | length }}"}}},
            ],
            "connections": [{"from": "start", "to": "link"}, {"from": "link", "to": "big"},
                            {"from": "big", "to": "approval"},
                            {"from": "approval", "to": "after"}],
        }  # fmt: skip
        flow = workflow(client, doc)
        queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
        execution_of(client, queued["id"], "waiting")
        history = client.listed(f"/api/v1/executions/{queued['id']}/logs")
        (big,) = [e for e in history if e["type"] == "node.completed" and e["node_id"] == "big"]
        ref = big["data"]["outputs_ref"]
        assert "outputs" not in big["data"]
        digest = ref.removeprefix("sha256:")
        listing = s3.list_objects_v2(Bucket="linkflow-e2e", Prefix="runs/")
        keys = [item["Key"] for item in listing.get("Contents", [])]
        assert f"runs/{digest[:2]}/{digest[2:4]}/{digest}" in keys
        (link,) = [e for e in history if e["type"] == "node.completed" and e["node_id"] == "link"]
        resume_path = link["data"]["outputs"]["main"][0]["json"]["url"]
    finally:
        first.stop()
    assert not list((tmp_path / "b").glob("**/sha256*"))

    second = Serve(tmp_path / "b", **shared)
    second.start()
    try:
        client = Client(second)
        client.token = client.ok("POST", "/api/v1/auth/login", 200, json=ADA)["access_token"]
        path = httpx.URL(resume_path).path
        resumed = httpx.post(f"{second.url}{path}", json={"ok": True}, timeout=30)
        assert resumed.status_code == 202, resumed.text
        done = execution_of(client, queued["id"], "completed", "failed")
        assert done["status"] == "completed", done
        assert done["output"][0]["size"] == 5000
        assert not list((tmp_path / "b").rglob("blobs/*/*/*"))
    finally:
        second.stop()
