"""Integration nodes as the platform runs them: one node under the real engine (manual →
node), for the tests of retries, and the context a credential check gets.

The engine's clock is a `StepClock`: sleeping only records the delay, so a test sees
how long the engine waited for a retry (a service's Retry-After) without waiting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from linkflow.engine import Engine, ExecutionInfo, NodeServices, RunResult
from linkflow.nodes.registry import default_registry
from linkflow.services.credentials_file import FileCredentials
from tests.unit.engine._support import CountingEntropy, StepClock

__all__ = ["NODE", "Checking", "events", "run_in_engine"]

NODE = "node"


async def run_in_engine(
    http: httpx.AsyncClient,
    node_type: str,
    parameters: Mapping[str, Any],
    *,
    credentials: Mapping[str, Mapping[str, Any]],
    input_: Any = None,
    clock: StepClock | None = None,
    **fields: Any,
) -> RunResult:
    """Run `manual → node_type`; `credentials` maps slot → `{"type", "data"}`, stored under
    the slot's name. `fields` go on the node (`retry`, `on_error`)."""
    store = FileCredentials({slot: dict(value) for slot, value in credentials.items()})
    engine = Engine(default_registry(plugins=False),
                    services=NodeServices(http=lambda: http, credentials=store))  # fmt: skip
    doc = {
        "name": "saas",
        "nodes": [
            {"id": "start", "type": "manual", "parameters": {}},
            {"id": NODE, "type": node_type, "parameters": dict(parameters),
             "credentials": {slot: slot for slot in credentials}, **fields},
        ],
        "connections": [{"from": "start", "to": NODE}],
    }  # fmt: skip
    info = ExecutionInfo(execution_id="exec-saas", workflow_id="wf", workflow_name="saas",
                         workflow_version=1, attempt=1, variables={})  # fmt: skip
    return await engine.run(engine.compile(doc), input=input_, info=info,
                            clock=clock or StepClock(), entropy=CountingEntropy())  # fmt: skip


def events(result: RunResult, type_: str) -> list[dict[str, Any]]:
    return [dict(event.data) for event in result.events if event.type == type_]


class Checking:
    """The `CheckContext` the control plane gives a credential check: the guarded client
    and a time budget (an HTTP check resolves no host itself)."""

    def __init__(self, http: httpx.AsyncClient, timeout_s: float = 5.0) -> None:
        self._http = http
        self._timeout_s = timeout_s

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    def http(self) -> httpx.AsyncClient:
        return self._http

    async def resolve_host(self, host: str, port: int) -> list[str]:
        raise AssertionError(f"an HTTP check resolves nothing itself ({host}:{port})")
