"""`linkflow backup` and `linkflow restore` as an operator runs them, against `linkflow serve`.

The drill: back up while serve runs executions, restore into a fresh data dir (with the
key files copied beside it, as docs/operations.md says), start serve there, and find
everything: workflows, the credential (still opening: its test and a run that uses it
pass), the schedule, the finished executions, and a waiting execution that resumes
(reading back, from the restored blob directory, an output that was offloaded).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest

from tests._http_server import Recorded, Reply, TestServer, serve
from tests.e2e._serve import Client, Serve, execution_of, free_port, poll, register, workflow

TOKEN = "drill-token-4c1e9a77"
FINISHED = ("completed", "failed", "cancelled", "timeout")


def linkflow(data_dir: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "LINKFLOW_DATA_DIR": str(data_dir), **settings}
    return subprocess.run([sys.executable, "-m", "linkflow", *args], env=env, cwd=data_dir,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def checked(request: Recorded) -> Reply:
    """200 only for the credential's token: a run that sent anything else fails."""
    if request.headers.get("authorization") != f"Bearer {TOKEN}":
        return Reply.json({"error": "bad token"}, 401)
    return Reply.json({"ok": True})


def calls(url: str, credential_id: str) -> dict[str, Any]:
    """A workflow whose HTTP request node authenticates with the credential."""
    return {
        "name": "calls with the credential",
        "nodes": [{"id": "start", "type": "manual"},
                  {"id": "call", "type": "http_request", "parameters": {"url": url, "auth": "auth"},
                   "credentials": {"auth": credential_id}}],
        "connections": [{"from": "start", "to": "call"}],
    }  # fmt: skip


WAITS = {
    "name": "big then wait",
    "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "big", "type": "set", "parameters": {"fields": {"text": "{{ 'x' * 5000 }}"}}},
        {"id": "link", "type": "set",
         "parameters": {"fields": {"url": "{{ execution.resume_url }}"}}},
        {"id": "approval", "type": "wait", "parameters": {"resume": "webhook"}},
        {"id": "after", "type": "set",
         "parameters": {"fields": {"size": "{{ node['big'].json.text | length }}",
                                   "approved": "{{ json.resume.body.ok }}"}}},
    ],
    # link before big: its output (the resume URL) stays in the history, big's is a blob.
    "connections": [{"from": "start", "to": "link"}, {"from": "link", "to": "big"},
                    {"from": "big", "to": "approval"}, {"from": "approval", "to": "after"}],
}  # fmt: skip
BUSY = {
    "name": "busy",
    "nodes": [{"id": "start", "type": "manual"},
              {"id": "a", "type": "set", "parameters": {"fields": {"n": "{{ json.n }}"}}},
              {"id": "b", "type": "set", "parameters": {"fields": {"twice": "{{ json.n * 2 }}"}}}],
    "connections": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}],
}  # fmt: skip
NIGHTLY = {
    "name": "nightly",
    "nodes": [{"id": "night", "type": "schedule",
               "parameters": {"cron": "0 3 * * *", "timezone": "Europe/Paris"}},
              {"id": "mark", "type": "set", "parameters": {"fields": {"ran": True}}}],
    "connections": [{"from": "night", "to": "mark"}],
}  # fmt: skip
SETTINGS = {"LINKFLOW_HTTP_ALLOW_PRIVATE": "true", "LINKFLOW_BLOB_THRESHOLD_BYTES": "1024"}


def populate(client: Client, remote: TestServer) -> dict[str, Any]:
    """The installation the drill backs up; what it made, by name."""
    register(client)
    credential = client.ok("POST", "/api/v1/credentials", 201, json={
        "name": "remote", "type": "bearer",
        "data": {"token": TOKEN, "test_url": remote.url("/v1/check")},
    })  # fmt: skip
    made = {"credential": credential,
            "calls": workflow(client, calls(remote.url("/v1/check"), credential["id"])),
            "waits": workflow(client, WAITS), "busy": workflow(client, BUSY),
            "nightly": workflow(client, NIGHTLY, activate=True)}  # fmt: skip
    finished = []
    for _ in range(3):
        run = client.ok("POST", f"/api/v1/workflows/{made['calls']['id']}/execute", 202, json={})
        finished.append(execution_of(client, run["id"], *FINISHED))
    assert all(run["status"] == "completed" for run in finished), finished
    waiting = client.ok("POST", f"/api/v1/workflows/{made['waits']['id']}/execute", 202, json={})
    execution_of(client, waiting["id"], "waiting")
    made["finished"] = finished
    made["waiting"] = waiting["id"]
    return made


def keep_running(
    client: Client, workflow_id: str, stop: threading.Event
) -> tuple[list[str], threading.Thread]:
    """Start executions of `workflow_id` one after another until `stop`: their ids (the
    list grows) and the thread starting them."""
    started: list[str] = []

    def loop() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            body = client.ok("POST", f"/api/v1/workflows/{workflow_id}/execute", 202,
                             json={"input": {"n": n}})  # fmt: skip
            started.append(body["id"])

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return started, thread


def test_a_backup_taken_under_load_restores_everything_into_a_fresh_data_dir(
    tmp_path: Path,
) -> None:
    """The drill of docs/operations.md: backup while executions run, restore elsewhere
    with the key files, start serve there; everything is there and works."""
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    backup_file = tmp_path / "linkflow-backup.tar.gz"
    with serve({"/v1/check": checked}) as remote:
        first = Serve(first_dir, **SETTINGS)
        first.start()
        try:
            client = Client(first)
            made = populate(client, remote)
            stop = threading.Event()
            started, starter = keep_running(client, made["busy"]["id"], stop)
            poll(lambda: len(started) >= 20, "executions to run while the backup is taken")
            taken = linkflow(first_dir, "backup", str(backup_file), **SETTINGS)
            during = len(started)
            poll(lambda: len(started) >= during + 10, "executions to run after the backup")
            stop.set()
            starter.join(timeout=30)
        finally:
            first.stop()
        assert taken.returncode == 0, taken.stderr
        assert "backup written to" in taken.stdout
        assert "keep apart from it" in taken.stdout  # the keys are named, not carried
        with tarfile.open(backup_file) as archive:
            names = archive.getnames()
        assert names[:2] == ["manifest.json", "linkflow.db"]
        assert any(name.startswith("blobs/") for name in names)  # the offloaded output
        assert not any("key" in name for name in names)

        for key_file in ("encryption_key", "secret_key"):  # the documented procedure
            shutil.copy2(first_dir / key_file, second_dir / key_file)
        restored = linkflow(second_dir, "restore", str(backup_file), **SETTINGS)
        assert restored.returncode == 0, restored.stderr
        assert "restored" in restored.stdout

        second = Serve(second_dir, **SETTINGS)
        second.start()
        try:
            check_restored(Client(second), second, made, started, remote)
        finally:
            second.stop()


def check_restored(
    client: Client, server: Serve, made: dict[str, Any], started: list[str], remote: TestServer,
) -> None:  # fmt: skip
    client.token = ""
    login = client.ok(
        "POST",
        "/api/v1/auth/login",
        json={"email": "ada@example.com", "password": "correct horse battery"},
    )
    client.token = login["access_token"]
    names = {flow["name"] for flow in client.listed("/api/v1/workflows")}
    assert names == {"calls with the credential", "big then wait", "busy", "nightly"}
    credential = made["credential"]
    tested = client.ok("POST", f"/api/v1/credentials/{credential['id']}/test")
    assert tested["ok"] is True, tested  # it opened, and the remote accepted its token
    schedules = client.listed("/api/v1/schedules")
    assert [s["workflow_id"] for s in schedules] == [made["nightly"]["id"]]
    for run in made["finished"]:
        again = client.ok("GET", f"/api/v1/executions/{run['id']}")
        assert (again["status"], again["output"]) == ("completed", run["output"])
    # What ran while the backup was taken: every one the backup holds finishes (those it
    # caught queued or running resume), none half-written.
    present = [e["id"] for e in client.listed("/api/v1/executions",
                                              workflow_id=made["busy"]["id"])]  # fmt: skip
    assert 20 <= len(present) <= len(started)
    for execution_id in present:
        done = execution_of(client, execution_id, *FINISHED)
        assert done["status"] == "completed", done
        assert done["output"][0]["twice"] == 2 * done["input"]["n"]
    # The waiting execution resumes here, through its link (host and port are this server's).
    waiting = made["waiting"]
    assert client.ok("GET", f"/api/v1/executions/{waiting}")["status"] == "waiting"
    events = client.listed(f"/api/v1/executions/{waiting}/logs")
    link = next(e for e in events if e["type"] == "node.completed" and e["node_id"] == "link")
    url = link["data"]["outputs"]["main"][0]["json"]["url"]
    path = url[url.index("/webhooks/resume/") :]
    assert client.call("POST", path, json={"ok": True}).status_code == 202
    resumed = execution_of(client, waiting, *FINISHED)
    assert resumed["status"] == "completed", resumed
    after = resumed["output"][0]
    assert (after["size"], after["approved"]) == (5000, True)  # the blob came back
    # And a new run uses the credential.
    hits = len(remote.hits("/v1/check"))
    run = client.ok("POST", f"/api/v1/workflows/{made['calls']['id']}/execute", 202, json={})
    assert execution_of(client, run["id"], *FINISHED)["status"] == "completed"
    assert len(remote.hits("/v1/check")) > hits


@pytest.fixture
def backed_up(tmp_path: Path) -> tuple[Path, Path]:
    """A data dir with a user and a credential, stopped, and a backup of it."""
    data_dir = tmp_path / "source"
    data_dir.mkdir()
    server = Serve(data_dir)
    server.start()
    try:
        client = Client(server)
        register(client)
        client.ok(
            "POST",
            "/api/v1/credentials",
            201,
            json={"name": "remote", "type": "bearer", "data": {"token": TOKEN}},
        )
    finally:
        server.stop()
    backup_file = tmp_path / "backup.tar.gz"
    result = linkflow(data_dir, "backup", str(backup_file))
    assert result.returncode == 0, result.stderr
    return data_dir, backup_file


def test_restore_refuses_a_data_dir_a_running_serve_holds(
    tmp_path: Path, backed_up: tuple[Path, Path]
) -> None:
    """With serve running on the target, restore exits 2 saying so; serve's data stays."""
    _, backup_file = backed_up
    target = tmp_path / "target"
    target.mkdir()
    server = Serve(target)
    server.start()
    try:
        client = Client(server)
        register(client)
        refused = linkflow(target, "restore", "--replace", str(backup_file))
        assert refused.returncode == 2
        assert "in use by a running LinkFlow process" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert client.ok("GET", "/api/v1/credentials")["data"] == []  # its own, untouched
    finally:
        server.stop()


def test_restore_refuses_files_that_are_not_backups_it_can_restore(
    tmp_path: Path, backed_up: tuple[Path, Path]
) -> None:
    """Not an archive, an archive of something else, a backup from a newer schema, a
    damaged one: each exit 2 with its reason, and the data dir gets no database."""
    source, backup_file = backed_up
    target = tmp_path / "target"
    target.mkdir()
    shutil.copy2(source / "encryption_key", target / "encryption_key")
    not_archive = tmp_path / "notes.txt"
    not_archive.write_text("hello")
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as archive:
        archive.add(not_archive, arcname="notes.txt")
    newer = tmp_path / "newer.tar.gz"
    rewrite(backup_file, newer, revision="9999_from_the_future")
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(backup_file.read_bytes()[: backup_file.stat().st_size // 2])
    cases = {not_archive: "is not a LinkFlow backup", other: "is not a LinkFlow backup",
             newer: "is from a newer LinkFlow", damaged: "is damaged"}  # fmt: skip
    for file, reason in cases.items():
        refused = linkflow(target, "restore", str(file))
        assert refused.returncode == 2, (file, refused.stdout)
        assert reason in refused.stderr, (file, refused.stderr)
        assert "Traceback" not in refused.stderr
        assert not (target / "linkflow.db").exists()


def rewrite(source: Path, target: Path, *, revision: str) -> None:
    """`source` with its manifest's schema revision replaced by `revision`."""
    with tarfile.open(source) as original, tarfile.open(target, "w:gz") as copy:
        for member in original:
            data = original.extractfile(member)
            assert data is not None
            content = data.read()
            if member.name == "manifest.json":
                text = content.decode()
                old = text.split('"schema_revision": "')[1].split('"')[0]
                content = text.replace(old, revision).encode()
                member.size = len(content)
            copy.addfile(member, io.BytesIO(content))


def test_restore_without_the_keys_is_refused_naming_the_key_and_serve_needs_the_old_ones(
    tmp_path: Path, backed_up: tuple[Path, Path]
) -> None:
    """In a data dir with another encryption key (or none), restore names the key id the
    credentials need and exits 2; with --without-keys it restores and warns; a restore
    over data needs --replace and keeps the replaced database aside."""
    source, backup_file = backed_up
    target = tmp_path / "target"
    target.mkdir()
    refused = linkflow(target, "restore", str(backup_file))
    assert refused.returncode == 2
    assert "no encryption key is configured" in refused.stderr
    assert "encryption_key" in refused.stderr
    anyway = linkflow(target, "restore", "--without-keys", str(backup_file))
    assert anyway.returncode == 0, anyway.stderr
    assert "enter those credentials again" in anyway.stderr
    shutil.copy2(source / "encryption_key", target / "encryption_key")
    over = linkflow(target, "restore", str(backup_file))
    assert over.returncode == 2
    assert "--replace" in over.stderr
    replaced = linkflow(target, "restore", "--replace", str(backup_file))
    assert replaced.returncode == 0, replaced.stderr
    assert list(target.glob("linkflow.db.replaced-*"))


def test_serve_does_not_start_while_a_restore_holds_the_database(tmp_path: Path) -> None:
    """The lock restore takes (`store.sqlite_lock`) keeps serve from starting on the file."""
    from linkflow.store.sqlite_lock import DatabaseLock

    with DatabaseLock(tmp_path / "linkflow.db", exclusive=True):
        result = linkflow(tmp_path, "serve", "--port", str(free_port()))
    assert result.returncode == 2
    assert "is being restored" in result.stderr


def test_backup_on_postgresql_points_to_pg_dump(tmp_path: Path) -> None:
    result = linkflow(
        tmp_path,
        "backup",
        str(tmp_path / "x.tar.gz"),
        LINKFLOW_DATABASE_URL="postgresql://linkflow@127.0.0.1:1/linkflow",
    )
    assert result.returncode == 2
    assert "pg_dump" in result.stderr
    assert not (tmp_path / "x.tar.gz").exists()
