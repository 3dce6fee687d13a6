"""`linkflow run` as a user runs it: a real process, real files, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def linkflow(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "linkflow", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_run_prints_the_result_items_and_exits_0() -> None:
    """A completed execution prints its output as JSON on stdout."""
    done = linkflow("run", str(EXAMPLES / "greet-adults.json"),
                    "--input", '{"body": {"name": "Ada", "age": 36}}')  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"msg": "Welcome Ada"}]


def test_run_reads_the_input_from_a_file(tmp_path: Path) -> None:
    """`--input @file` reads JSON from the file."""
    payload = tmp_path / "in.json"
    payload.write_text(json.dumps({"body": {"name": "Tim", "age": 9}}))
    done = linkflow("run", str(EXAMPLES / "greet-adults.json"), "--input", f"@{payload}")
    assert json.loads(done.stdout) == [{"msg": "Sorry"}]


def test_a_failed_execution_exits_1_and_prints_the_error(tmp_path: Path) -> None:
    """The error names the node; stdout still holds valid JSON."""
    done = linkflow("run", str(EXAMPLES / "error-handling.json"), "--input", '[{"records": 5}]')
    assert done.returncode == 1
    assert "at node 'fail': nothing could be imported" in done.stderr


def test_an_invalid_document_exits_2_listing_every_problem(tmp_path: Path) -> None:
    """Each problem is listed with its node id; nothing runs."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nodes": [{"id": "a", "type": "nope"}, {"id": "a", "type": "noop"}],
                               "connections": [{"from": "a", "to": "ghost"}]}))  # fmt: skip
    done = linkflow("run", str(bad))
    assert done.returncode == 2
    assert "unknown node type 'nope'" in done.stderr
    assert "duplicate node id" in done.stderr
    assert "ghost" in done.stderr
    assert done.stdout == ""


def test_malformed_json_and_bad_input_are_one_line_errors(tmp_path: Path) -> None:
    """Neither a broken file nor a broken --input gives a traceback."""
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    done = linkflow("run", str(broken))
    assert done.returncode == 2
    assert "is not valid JSON" in done.stderr
    assert "Traceback" not in done.stderr
    done = linkflow("run", str(EXAMPLES / "greet-adults.json"), "--input", "{oops")
    assert done.returncode == 2
    assert "--input is not valid JSON" in done.stderr


def test_progress_shows_every_node_with_its_status() -> None:
    """`--progress` draws a table on stderr with each node's final status and runs."""
    items = json.dumps([{"sku": "a", "qty": 2, "unit_price": 9.5}] * 3)
    done = linkflow("run", str(EXAMPLES / "batch-loop.json"), "--progress", "--input", items)
    assert done.returncode == 0, done.stderr
    price_row = next(line for line in done.stderr.splitlines() if " price " in line)
    assert "completed" in price_row
    assert " 2 " in price_row  # two batches of two items at most
    assert len(json.loads(done.stdout)) == 2


def test_a_sub_workflow_file_runs_as_a_child_execution() -> None:
    """execute_workflow loads the child file relative to the parent and returns its items."""
    done = linkflow("run", str(EXAMPLES / "subworkflow.json"),
                    "--input", '[{"name": "a", "n": 1}, {"name": "b", "n": 5}]')  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": 2, "label": "a: 2"}, {"n": 10, "label": "b: 10"}]


def test_a_failed_run_starts_its_error_workflow() -> None:
    """settings.error_workflow receives the failure and its output is reported."""
    done = linkflow("run", str(EXAMPLES / "error-workflow.json"), "--input", '{"orders": []}')
    assert done.returncode == 1
    assert "execution failed at node 'empty': no orders to import" in done.stderr
    assert (
        'error workflow completed: [{"report":"Import orders failed at empty: '
        'no orders to import"}]'
    ) in done.stderr


def test_a_short_wait_is_slept_through(tmp_path: Path) -> None:
    """linkflow run waits out a timed wait and finishes the run."""
    doc = {
        "nodes": [{"id": "start", "type": "manual"},
                  {"id": "pause", "type": "wait", "parameters": {"seconds": 0.2}},
                  {"id": "after", "type": "set", "parameters": {"fields": {"ok": True}}}],
        "connections": [{"from": "start", "to": "pause"}, {"from": "pause", "to": "after"}],
    }  # fmt: skip
    path = tmp_path / "wait.json"
    path.write_text(json.dumps(doc))
    done = linkflow("run", str(path), "--input", "{}")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"ok": True}]


def test_a_webhook_wait_is_reported_not_hung(tmp_path: Path) -> None:
    """A wait only a webhook can end: exit 1 with the reason, at once."""
    doc = {
        "nodes": [{"id": "start", "type": "manual"},
                  {"id": "pause", "type": "wait", "parameters": {"resume": "webhook"}}],
        "connections": [{"from": "start", "to": "pause"}],
    }  # fmt: skip
    path = tmp_path / "wait.json"
    path.write_text(json.dumps(doc))
    done = linkflow("run", str(path))
    assert done.returncode == 1
    assert "waits for its resume webhook" in done.stderr


def _http_workflow(tmp_path: Path, url: str) -> Path:
    doc = {
        "nodes": [{"id": "start", "type": "manual"},
                  {"id": "call", "type": "http_request", "credentials": {"auth": "api"},
                   "parameters": {"method": "GET", "url": url, "auth": "auth"}}],
        "connections": [{"from": "start", "to": "call"}],
    }  # fmt: skip
    path = tmp_path / "http.json"
    path.write_text(json.dumps(doc))
    return path


def test_http_request_uses_credentials_from_a_file_and_the_private_opt_in(tmp_path: Path) -> None:
    """--credentials supplies the bearer token; loopback needs LINKFLOW_HTTP_ALLOW_PRIVATE."""
    from tests._http_server import Reply, serve

    secrets_file = tmp_path / "credentials.json"
    secrets_file.write_text(json.dumps({"api": {"type": "bearer", "data": {"token": "t0k"}}}))
    with serve(
        {"/me": lambda request: Reply.json({"auth": request.headers["authorization"]})}
    ) as srv:
        path = _http_workflow(tmp_path, srv.url("/me"))
        refused = linkflow("run", str(path), "--credentials", str(secrets_file))
        assert refused.returncode == 1
        assert "LINKFLOW_HTTP_ALLOW_PRIVATE" in refused.stderr
        done = subprocess.run(
            [sys.executable, "-m", "linkflow", "run", str(path), "--credentials",
             str(secrets_file)],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
            env={"PATH": "/usr/bin:/bin", "LINKFLOW_HTTP_ALLOW_PRIVATE": "true"},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"auth": "Bearer t0k"}]


def test_a_broken_credentials_file_is_one_line(tmp_path: Path) -> None:
    """A credentials file that is not JSON stops with exit code 2 and its name."""
    bad = tmp_path / "credentials.json"
    bad.write_text("{nope")
    done = linkflow("run", str(EXAMPLES / "greet-adults.json"), "--credentials", str(bad))
    assert done.returncode == 2
    assert "credentials.json" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_code_node_runs_sandboxed_under_linkflow_run(tmp_path: Path) -> None:
    """The code node works from the CLI; the protections in force are logged on stderr."""
    doc = {
        "nodes": [{"id": "start", "type": "manual"},
                  {"id": "square", "type": "code",
                   "parameters": {"code": "return [{'sq': i['n'] ** 2} for i in items]"}}],
        "connections": [{"from": "start", "to": "square"}],
    }  # fmt: skip
    path = tmp_path / "code.json"
    path.write_text(json.dumps(doc))
    done = linkflow("run", str(path), "--input", '[{"n": 3}, {"n": 4}]')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"sq": 9}, {"sq": 16}]
    assert "network_isolated=True" in done.stderr
