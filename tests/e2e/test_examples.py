"""Every example under examples/ runs with the input beside it (issue 14: six of seven
failed when run as they were): through `linkflow run`, and through `linkflow serve`'s API
with the same answer."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e._serve import EXAMPLES, ROOT, Client, Serve, execution_of, register

ENDED = ("completed", "failed", "cancelled", "timeout")
EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.json") if not p.name.endswith(".input.json"))


def input_of(example: Path) -> Path:
    return example.with_name(f"{example.stem}.input.json")


def run_file(example: Path) -> subprocess.CompletedProcess[str]:
    """`linkflow run` as the README shows it, from the repository."""
    return subprocess.run(
        [sys.executable, "-m", "linkflow", "run", str(example.relative_to(ROOT)),
         "--input", f"@{input_of(example).relative_to(ROOT)}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def deploy(client: Client, path: Path) -> str:
    """Create the workflow in `path` on the server, its file references (sub-workflows,
    the error workflow) created first and replaced by their ids: a server refers to
    workflows by id, `linkflow run` by file."""
    document: dict[str, Any] = json.loads(path.read_text())
    for node in document["nodes"]:
        reference = node.get("parameters", {}).get("workflow_id")
        if node["type"] == "execute_workflow" and str(reference).endswith(".json"):
            node["parameters"]["workflow_id"] = deploy(client, path.parent / reference)
    settings = document.get("settings", {})
    if str(settings.get("error_workflow", "")).endswith(".json"):
        settings["error_workflow"] = deploy(client, path.parent / settings["error_workflow"])
    return str(client.ok("POST", "/api/v1/workflows", 201, json=document)["id"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One `linkflow serve` for every example, with a registered user."""
    server = Serve(tmp_path_factory.mktemp("serve"))
    server.start()
    client = Client(server)
    register(client)
    yield client
    server.stop()


def test_there_are_examples_and_each_has_its_input() -> None:
    """An example added without `<name>.input.json` beside it fails here."""
    assert len(EXAMPLE_FILES) >= 7
    missing = [p.name for p in EXAMPLE_FILES if not input_of(p).is_file()]
    assert not missing, f"examples without an input file: {missing}"


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_the_example_completes_under_linkflow_run(example: Path) -> None:
    """`linkflow run examples/X.json --input @examples/X.input.json` exits 0 with items."""
    done = run_file(example)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout), "the run produced no items"


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_the_example_answers_the_same_under_serve(example: Path, served: Client) -> None:
    """Created through the API and executed with its input (`wait: true`), the example
    completes with the items `linkflow run` prints."""
    workflow_id = deploy(served, example)
    payload = json.loads(input_of(example).read_text())
    started = served.call("POST", f"/api/v1/workflows/{workflow_id}/execute",
                          json={"input": payload, "wait": True})  # fmt: skip
    # 200 with the finished execution, or 202 while it waits (a parent for its children).
    assert started.status_code in {200, 202}, started.text
    done = execution_of(served, started.json()["id"], *ENDED)
    assert done["status"] == "completed", done
    by_run = run_file(example)
    assert by_run.returncode == 0, by_run.stderr
    assert done["output"] == json.loads(by_run.stdout)
