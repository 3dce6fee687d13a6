"""Hostile code nodes against `linkflow serve`: two tenants, one sandbox worker.

With `LINKFLOW_CODE_WORKERS=1` every code node of every workspace runs on the
same worker, so whatever a worker kept of one run, the next run could find.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import linkflow.sandbox
from tests._sandbox_probes import (
    LEAVE_MARKERS,
    SCAN_OWN_MEMORY,
    UNSHARE_USER_NAMESPACE,
    derived,
    marker,
)
from tests.e2e._serve import Client, Serve, execution_of, poll, workflow

ADA = {"email": "ada@example.com", "password": "correct horse battery"}
BOB = {"email": "bob@example.com", "password": "staple battery horse"}
CHILD_FILE = Path(linkflow.sandbox.__file__).resolve().with_name("_child.py")


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


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (sandbox workers run under bwrap, below serve)."""
    parents: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            line = next(ln for ln in status.read_text().splitlines() if ln.startswith("PPid:"))
        except (OSError, StopIteration):
            continue
        parents[int(status.parent.name)] = int(line.split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        below = [child for child, ppid in parents.items() if ppid == parent]
        found += below
        frontier += below
    return found


def command_lines(server: Serve) -> list[list[str]]:
    """The command lines of the processes below serve, as `ps` shows them."""
    assert server.process is not None
    lines = []
    for pid in descendants(server.process.pid):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if raw:
            lines.append(raw.rstrip(b"\0").decode(errors="replace").split("\0"))
    return lines


@pytest.mark.parametrize(
    ("sandbox", "child"),
    [("bubblewrap", "/opt/linkflow/child.py"), ("none", str(CHILD_FILE))],
)
def test_sandbox_workers_have_short_command_lines_without_their_source(
    tmp_path: Path, sandbox: str, child: str
) -> None:
    """Regression (issue 14, item 15): each sandbox worker had its whole source (27 kB) on
    its command line, `python -I -S -c <source>`, flooding `ps`. Now it runs the file: under
    bubblewrap the one file mounted at a fixed path, unsandboxed its real path; code runs."""
    server = Serve(tmp_path, LINKFLOW_CODE_SANDBOX=sandbox, LINKFLOW_CODE_WORKERS="1")
    server.start()
    try:
        client = tenant(server, ADA)
        done = run_code(client, "return [{'sum': item['a'] + 1} for item in items]", {"a": 41})
        assert done["status"] == "completed", done["error"]
        assert done["output"] == [{"sum": 42}]

        def workers() -> list[list[str]]:
            return [argv for argv in command_lines(server) if "-I" in argv and "-S" in argv]

        for argv in poll(workers, "a warm sandbox worker"):
            assert len("\0".join(argv)) < 2048, argv[:3]
            assert not any("def serve(" in arg or "import " in arg for arg in argv), argv[:3]
            assert argv[-3:-1] == ["-S", child]
    finally:
        server.stop()
