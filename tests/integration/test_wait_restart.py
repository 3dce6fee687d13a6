"""A waiting execution outlives the process that ran it: another one resumes it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from linkflow.engine import Engine, Resume
from linkflow.services.history import DatabaseHistory
from linkflow.store import Database
from tests.integration._rows import new_execution, new_workspace
from tests.integration._wait_process import WORKFLOW, info

ROOT = Path(__file__).resolve().parents[2]


async def test_a_wait_survives_the_process_and_resumes_from_the_database(
    database: Database, db_url: str
) -> None:
    """Process A runs until the wait and exits; this process resumes by webhook."""
    execution = await new_execution(database, await new_workspace(database))
    first = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.integration._wait_process", db_url, str(execution.id)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "waiting"

    history = DatabaseHistory(database, execution.id)
    stored = await history.read()
    assert stored[-1].type == "execution.waiting"
    engine = Engine()
    result = await engine.run(engine.compile(WORKFLOW), history=history,
                              info=info(str(execution.id)),
                              resume=Resume({"body": {"ok": True}}))  # fmt: skip
    assert result.status == "completed"
    assert result.output == [{"order": 7, "prepared": True, "resume": {"body": {"ok": True}},
                              "approved": True}]  # fmt: skip
    completed = [e.node_id for e in await history.read() if e.type == "node.completed"]
    assert completed == ["start", "prepare", "approval", "finish"]
