"""Runs the waiting workflow of test_wait_restart against a database history, then exits.

Usage: python -m tests.integration._wait_process DATABASE_URL EXECUTION_ID
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from linkflow.engine import Engine, ExecutionInfo
from linkflow.services.history import DatabaseHistory
from linkflow.store import Database

WORKFLOW = {
    "name": "approve",
    "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "prepare", "type": "set", "parameters": {"fields": {"prepared": True}}},
        {"id": "approval", "type": "wait", "parameters": {"resume": "webhook"}},
        {"id": "finish", "type": "set",
         "parameters": {"fields": {"approved": "{{ json.resume.body.ok }}"}}},
    ],
    "connections": [{"from": "start", "to": "prepare"}, {"from": "prepare", "to": "approval"},
                    {"from": "approval", "to": "finish"}],
}  # fmt: skip


def info(execution_id: str) -> ExecutionInfo:
    return ExecutionInfo(execution_id, "wf", "approve", 1, 1, {})


async def main(url: str, execution_id: str) -> None:
    database = Database(url)
    try:
        engine = Engine()
        history = DatabaseHistory(database, uuid.UUID(execution_id))
        result = await engine.run(engine.compile(WORKFLOW), input={"order": 7},
                                  history=history, info=info(execution_id))  # fmt: skip
        sys.stdout.write(result.status + "\n")
    finally:
        await database.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
