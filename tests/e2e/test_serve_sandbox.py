"""Hostile code nodes against `linkflow serve`: two tenants, one sandbox worker.

With `LINKFLOW_CODE_WORKERS=1` every code node of every workspace runs on the
same worker, so whatever a worker kept of one run, the next run could find.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests._sandbox_probes import (
    LEAVE_MARKERS,
    SCAN_OWN_MEMORY,
    UNSHARE_USER_NAMESPACE,
    derived,
    marker,
)
from tests.e2e._serve import Client, Serve, execution_of, workflow

ADA = {"email": "ada@example.com", "password": "correct horse battery"}
BOB = {"email": "bob@example.com", "password": "staple battery horse"}


def tenant(server: Serve, account: dict[str, str]) -> Client:
    """A newly registered user, in the personal workspace registration gives them."""
    client = Client(server)
    client.token = client.ok("POST", "/api/v1/auth/register", 201, json=account)["access_token"]
    return client


def run_code(client: Client, code: str, item: dict[str, Any]) -> dict[str, Any]:
    """A manual workflow with one code node, executed with `item` as input; the execution."""
    doc = {
        "name": "code",
        "nodes": [{"id": "start", "type": "manual"},
                  {"id": "code", "type": "code", "parameters": {"code": code}}],
        "connections": [{"from": "start", "to": "code"}],
    }  # fmt: skip
    flow = workflow(client, doc)
    queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202,
                       json={"input": item})  # fmt: skip
    return execution_of(client, queued["id"], "completed", "failed")


def test_a_code_node_finds_nothing_of_another_workspace_in_its_memory(tmp_path: Path) -> None:
    """Regression (issue 13): workspace B's code node scanned its own memory and found the
    items and values of workspace A's code node, run earlier on the same worker. The scan
    finds B's own item (so it reads the memory that holds items), none of A's values."""
    server = Serve(tmp_path, LINKFLOW_CODE_WORKERS="1")
    server.start()
    try:
        ada, bob = tenant(server, ADA), tenant(server, BOB)
        secret = marker()
        left = run_code(ada, LEAVE_MARKERS, {"marker": secret})
        assert left["status"] == "completed", left["error"]
        returned, file_name = derived(secret)
        assert left["output"] == [{"secret": returned}]
        own = marker()
        scanned = run_code(bob, SCAN_OWN_MEMORY, {"mine": own})
        assert scanned["status"] == "completed", scanned["error"]
        [seen] = scanned["output"]
        assert own in seen["found"]
        assert {secret, returned, file_name} & set(seen["found"]) == set()
    finally:
        server.stop()


def test_a_code_node_cannot_make_a_user_namespace(server: Serve) -> None:
    """Regression (issue 13): as root, `unshare(CLONE_NEWUSER)` succeeded inside the sandbox.
    Now the node fails with the system's own answer, EPERM."""
    client = tenant(server, ADA)
    failed = run_code(client, UNSHARE_USER_NAMESPACE, {})
    assert failed["status"] == "failed"
    assert failed["error"]["node_id"] == "code"
    assert failed["error"]["message"].startswith(
        "PermissionError: [Errno 1] Operation not permitted"
    )
