"""The executor: drives one execution to its end, one recorded step at a time.

The loop is: fold the history into state, ask the state for the next step,
perform it, append the event that records it, repeat. Every change of state
goes through `ExecutionState.apply`, and an event is applied only after the
history accepted it, so a run interrupted at any point continues from its
history exactly: nodes whose `node.completed` is recorded never run again,
and a node that was running when the process died runs again (at-least-once,
with the same idempotency key).

On replay each recorded step is checked against the step the state would
decide now; a history that the current workflow would not have produced
raises `NonDeterminismError` rather than continuing on a wrong path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from linkflow.engine.context import ExecutionInfo, RunContext
from linkflow.engine.events import TERMINAL_EVENTS, Event, EventType
from linkflow.engine.expressions import end_run, start_run
from linkflow.engine.history import History
from linkflow.engine.runtime import (
    Cancellation,
    Clock,
    Entropy,
    NeverCancelled,
    NodeServices,
    SystemClock,
    SystemEntropy,
    scrub_node_error,
)
from linkflow.engine.state import (
    Decision,
    ExecutionState,
    ExecutionStatus,
    NodeRun,
    items_from_json,
    items_to_json,
)
from linkflow.engine.storable import UnstorableValue, check_storable, scrubbed
from linkflow.engine.validation import CompiledNode, CompiledWorkflow
from linkflow.nodes.sdk import (
    ERROR_OUTPUT,
    MAIN,
    Item,
    Lineage,
    NodeError,
    NodeResult,
    OnError,
    Pair,
    error_item,
)

__all__ = ["Executor", "NonDeterminismError", "Resume"]

Observer = Callable[[Event], None]

_DURABLE_BEFORE_TOLD = TERMINAL_EVENTS | {
    EventType.EXECUTION_WAITING,
    EventType.EXECUTION_RESPONDED,
}
"""Events an observer may act on outside (answer a webhook caller, report an end):
they are durable before anyone hears of them. Other appends may be pipelined."""

_NODE_DATA_EVENTS = frozenset({EventType.NODE_COMPLETED, EventType.EXECUTION_RESPONDED})
"""Events holding what a node produced: unstorable, they fail that node (`storable`)."""

MAX_LOG_LINES = 1000
"""Log lines kept per node run (`ctx.log`, a code node's prints); more is noise."""


class NonDeterminismError(Exception):
    """The stored history does not match what the workflow decides now."""


class _WorkflowTimeout(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Resume:
    """A waiting execution's resume webhook was called with `payload`."""

    payload: Any = None


def _error_json(error: NodeError) -> dict[str, Any]:
    data: dict[str, Any] = {"message": error.message}
    if error.item_index is not None:
        data["item_index"] = error.item_index
    if error.description:
        data["description"] = error.description
    return data


def _as_node_error(error: Exception) -> NodeError:
    if isinstance(error, NodeError):
        return error
    detail = str(error) or type(error).__name__
    # An error the node did not anticipate may be transient (a dropped connection):
    # the node's retry policy decides.
    return NodeError(f"unexpected error: {detail}", retryable=True)


MAX_INTERRUPTIONS = 3
"""A node run whose process died this many times while running it fails instead of
being run again: a node that is OOM-killed every time must not crash-loop its workers."""


def _interrupted(times: int) -> NodeError:
    return NodeError(
        f"the node was interrupted {times} times: the process running it stopped each time "
        "(killed, out of memory, or its lease lost); it is not run again"
    )


def choose_start_node(workflow: CompiledWorkflow, requested: str | None) -> str | None:
    """The trigger an execution starts from: the requested one, else the first manual
    trigger, else the first trigger in execution order."""
    triggers = workflow.triggers
    if requested is not None:
        return requested
    for node_id in triggers:
        if workflow.nodes[node_id].spec.type == "manual":
            return node_id
    return triggers[0] if triggers else None


class Executor:
    """Runs one execution of a compiled workflow against its history."""

    def __init__(
        self,
        workflow: CompiledWorkflow,
        history: History,
        info: ExecutionInfo,
        *,
        clock: Clock | None = None,
        entropy: Entropy | None = None,
        cancellation: Cancellation | None = None,
        observer: Observer | None = None,
        services: NodeServices | None = None,
        on_end: Callable[[ExecutionState], None] | None = None,
    ) -> None:
        self.workflow = workflow
        self.on_end = on_end
        """Told of the ended state after the end is appended and before it is flushed:
        whatever it appends to the same store becomes durable with the end."""
        self.services = services or NodeServices()
        self.history = history
        self.info = info
        self.clock: Clock = clock or SystemClock()
        self.entropy: Entropy = entropy or SystemEntropy()
        self.cancellation: Cancellation = cancellation or NeverCancelled()
        self.observer = observer
        self.state = ExecutionState(workflow)
        self.events: list[Event] = []
        """The whole history as this executor knows it: replayed, then appended."""
        self._context: RunContext | None = None

    # -- history -------------------------------------------------------------

    async def _append(
        self, type_: EventType, node_id: str | None, data: dict[str, Any], decoded: object = None,
        *, checked: bool = False,
    ) -> None:  # fmt: skip
        if not checked:
            try:
                check_storable(data)
            except UnstorableValue:
                if type_ in _NODE_DATA_EVENTS:
                    raise  # the node's own data: it fails (see `_succeed`)
                data = scrubbed(data)  # the engine's data quoting a bad value: repaired
        event = Event(self.state.seq + 1, type_, node_id, data, self.clock.now())
        await self.history.append(event)
        self.state.apply(event, decoded)
        self.events.append(event)
        if type_ in TERMINAL_EVENTS and self.on_end is not None:
            self.on_end(self.state)
        if type_ in _DURABLE_BEFORE_TOLD:
            await self.history.flush()
        if self.observer is not None:
            self.observer(event)

    async def _replay(self, events: Sequence[Event]) -> None:
        for event in events:
            self._check_replayed_step(event)
            self.state.apply(event, await self._load_outputs(event))
            self.events.append(event)

    async def _load_outputs(self, event: Event) -> dict[str, list[Item]] | None:
        """The outputs of a node.completed event kept in the blob store, decoded."""
        ref = event.data.get("outputs_ref") if event.type is EventType.NODE_COMPLETED else None
        if ref is None:
            return None
        if self.services.blobs is None:
            raise NonDeterminismError(f"event {event.seq} needs the blob store to replay")
        encoded = orjson.loads(await self.services.blobs.get(ref))
        return {name: items_from_json(raw) for name, raw in encoded.items()}

    def _check_replayed_step(self, event: Event) -> None:
        if event.type is EventType.NODE_STARTED:
            runs = self.state.runs.get(event.node_id or "", [])
            if runs and runs[-1].index == event.data["run"]:
                return  # a retry or a resumed attempt of the run in progress
            expected = "run"
        elif event.type is EventType.NODE_SKIPPED:
            expected = "skip"
        else:
            return
        decision = self.state.decide()
        if decision.kind != expected or decision.node_id != event.node_id:
            raise NonDeterminismError(
                f"history event {event.seq} ({event.type} {event.node_id}) does not match "
                f"the workflow, which would now {decision.kind} {decision.node_id}"
            )

    # -- driving -------------------------------------------------------------

    async def run(
        self,
        *,
        input: Any = None,
        start_node: str | None = None,
        mode: str = "manual",
        resume: Resume | None = None,
    ) -> ExecutionState:
        """Run (or resume) the execution until it ends or waits; return the state.

        A waiting execution continues when `resume` is given (its webhook was
        called) or when its resume time has come; otherwise it stays waiting.
        The run's expressions share one memory budget (`expressions.start_run`).
        """
        budget = start_run()
        try:
            return await self._run(input=input, start_node=start_node, mode=mode, resume=resume)
        finally:
            end_run(budget)

    async def _run(
        self, *, input: Any, start_node: str | None, mode: str, resume: Resume | None
    ) -> ExecutionState:
        await self._replay(await self.history.read())
        if self.state.status.value in {"completed", "failed", "cancelled", "timeout"}:
            return self.state
        if self.state.status is ExecutionStatus.WAITING and not await self._resume(resume):
            return self.state
        if self.state.started_at is None:
            start = choose_start_node(self.workflow, start_node)
            await self._append(
                EventType.EXECUTION_STARTED,
                None,
                {
                    "input": input,
                    "start_node": start,
                    "mode": mode,
                    "workflow": {
                        "id": self.info.workflow_id,
                        "name": self.info.workflow_name,
                        "version": self.info.workflow_version,
                    },
                    "parent": self.info.parent.to_json() if self.info.parent else None,
                },
            )
        try:
            while await self._step():
                pass
        except _WorkflowTimeout:
            await self._end(EventType.EXECUTION_TIMED_OUT, self._timeout_error(None))
        return self.state

    async def _resume(self, resume: Resume | None) -> bool:
        """Record the resumption of a waiting execution, if it is due."""
        waiting = self.state.waiting
        assert waiting is not None
        if resume is not None:
            if not waiting.get("webhook"):
                return False
            data = {"by": "webhook", "payload": resume.payload}
        else:
            until = waiting.get("until")
            if until is None or datetime.fromisoformat(until) > self.clock.now():
                return False
            data = {"by": "time", "payload": None}
        await self._append(EventType.EXECUTION_RESUMED, None, data)
        return True

    def _remaining_s(self) -> float | None:
        """Seconds left of the workflow's timeout; time spent waiting does not count."""
        limit = self.workflow.document.settings.timeout_s
        if limit is None or self.state.started_at is None:
            return None
        elapsed = (self.clock.now() - self.state.started_at).total_seconds()
        return limit - elapsed + self.state.waited_s

    def _timeout_error(self, node_id: str | None) -> dict[str, Any]:
        limit = self.workflow.document.settings.timeout_s
        return {"error": {"message": f"the workflow exceeded its timeout of {limit:g} s",
                          "node_id": node_id}}  # fmt: skip

    async def _step(self) -> bool:
        """Take one step; False when the execution has ended."""
        reason = await self.cancellation.requested()
        if reason is not None:
            await self._end(EventType.EXECUTION_CANCELLED, {"reason": reason})
            return False
        remaining = self._remaining_s()
        if remaining is not None and remaining <= 0:
            raise _WorkflowTimeout
        decision = self.state.decide()
        if decision.kind == "finish":
            await self._end(EventType.EXECUTION_COMPLETED, {"output": self._final_output()})
            return False
        assert decision.node_id is not None
        if decision.kind == "skip":
            await self._append(EventType.NODE_SKIPPED, decision.node_id, {})
            return True
        return await self._run_node(decision)

    async def _end(self, type_: EventType, data: dict[str, Any]) -> None:
        assert type_ in TERMINAL_EVENTS
        await self._append(type_, None, data)

    def _final_output(self) -> list[dict[str, Any]]:
        run = self.state.last_run
        if run is None:
            return []
        for name in self.workflow.nodes[run.node_id].outputs:
            if run.outputs.get(name):
                return [item.json for item in run.outputs[name]]
        return []

    # -- one node ------------------------------------------------------------

    async def _run_node(self, decision: Decision) -> bool:
        node_id = decision.node_id
        assert node_id is not None
        compiled = self.workflow.nodes[node_id]
        runs = self.state.runs[node_id]
        if decision.resume:
            run_index, attempt = runs[-1].index, runs[-1].attempts + 1
            segments = runs[-1].inputs
        else:
            run_index, attempt = len(runs), 1
            segments = self.state.input_segments(node_id)
        inputs_json = [[segment.to_json() for segment in input_] for input_ in segments]
        while True:
            await self._append(
                EventType.NODE_STARTED,
                node_id,
                {"run": run_index, "attempt": attempt, "inputs": inputs_json},
                segments,
            )
            run = self.state.runs[node_id][-1]
            inputs = [self.state.items_of(input_) for input_ in run.inputs]
            if run.interruptions >= MAX_INTERRUPTIONS:
                return await self._fail(compiled, run, _interrupted(run.interruptions), inputs)
            outcome = await self._attempt(compiled, run, inputs)
            awaiting = self._context.awaiting if self._context is not None else []
            if awaiting:
                # The node started children it must wait for: whatever it returned is
                # moot, it runs again when they have ended (and finds them by key).
                await self._append(
                    EventType.EXECUTION_WAITING, None,
                    {"node_id": node_id, "run": run_index, "webhook": False, "until": None,
                     "children": awaiting},
                )  # fmt: skip
                return False
            if isinstance(outcome, NodeResult):
                return await self._succeed(compiled, run, outcome, inputs)
            # Before any event holds it: a remote echoing the request may quote a credential.
            outcome = scrub_node_error(outcome, self.services.scrubber)
            retry = compiled.spec.retry
            if outcome.retryable and run.failures + 1 < retry.max_attempts:
                delay = outcome.retry_after_s
                if delay is None:
                    delay = retry.delay_s(run.failures + 1)
                await self._append(
                    EventType.NODE_RETRYING, node_id,
                    {"run": run_index, "attempt": attempt, "error": _error_json(outcome),
                     "delay_s": delay},
                )  # fmt: skip
                await self._sleep_within_deadline(delay)
                attempt += 1
                continue
            return await self._fail(compiled, run, outcome, inputs)

    async def _sleep_within_deadline(self, delay: float) -> None:
        remaining = self._remaining_s()
        if remaining is not None and remaining < delay:
            await self.clock.sleep(max(remaining, 0))
            raise _WorkflowTimeout
        await self.clock.sleep(delay)

    async def _attempt(
        self, compiled: CompiledNode, run: NodeRun, inputs: list[list[Item]]
    ) -> NodeResult | NodeError:
        self._context = None
        if compiled.spec.disabled:
            return NodeResult.main(inputs[0] if inputs else [])
        ctx = self._context = RunContext(
            state=self.state,
            run=run,
            inputs=inputs,
            parameters=compiled.parameters,
            info=self.info,
            entropy=self.entropy,
            on_error=compiled.spec.on_error,
            node_name=compiled.spec.display_name,
            credentials=compiled.spec.credentials,
            services=self.services,
        )
        node_limit = compiled.spec.timeout_s
        workflow_limit = self._remaining_s()
        limits = [limit for limit in (node_limit, workflow_limit) if limit is not None]
        if not limits:
            return await self._call(compiled, ctx)
        deadline = asyncio.timeout(min(limits))
        try:
            async with deadline:
                return await self._call(compiled, ctx)
        except TimeoutError:
            if not deadline.expired():  # pragma: no cover - _call turns node errors into data
                raise
        if workflow_limit is not None and (node_limit is None or workflow_limit <= node_limit):
            raise _WorkflowTimeout
        return NodeError(f"the node timed out after {node_limit:g} s", retryable=True)

    @staticmethod
    async def _call(compiled: CompiledNode, ctx: RunContext) -> NodeResult | NodeError:
        try:
            return await compiled.node.run(ctx)
        except Exception as error:  # noqa: BLE001 - a node's failure is data, not a crash
            return _as_node_error(error)

    async def _succeed(
        self, compiled: CompiledNode, run: NodeRun, result: NodeResult, inputs: list[list[Item]]
    ) -> bool:
        """Record what a successful run produced; False when the execution now waits."""
        if result.wait is not None and self.state.resume_for(run.node_id, run.index) is None:
            until = result.wait.until
            await self._append(
                EventType.EXECUTION_WAITING, None,
                {"node_id": run.node_id, "run": run.index, "webhook": result.wait.webhook,
                 "until": until.isoformat() if until is not None else None},
            )  # fmt: skip
            return False
        try:
            outputs = _with_lineage(compiled, result, inputs)
        except NodeError as error:
            return await self._fail(compiled, run, error, inputs)
        try:
            if result.response is not None and self.state.response is None:
                response = result.response
                await self._append(
                    EventType.EXECUTION_RESPONDED, run.node_id,
                    {"status": response.status, "headers": dict(response.headers),
                     "body": response.body},
                )  # fmt: skip
            await self._complete(compiled, run, outputs, result)
        except UnstorableValue as unstorable:
            failure = NodeError(f"the node's output cannot be stored: {unstorable.reason}")
            return await self._fail(compiled, run, failure, inputs)
        return True

    async def _complete(
        self,
        compiled: CompiledNode,
        run: NodeRun,
        outputs: dict[str, list[Item]],
        result: NodeResult,
    ) -> None:
        data: dict[str, Any] = {"run": run.index}
        if result.state is not None:
            data["state"] = result.state
        if result.meta is not None:
            data["meta"] = result.meta
        if len(data) > 1:  # state or meta: the node's own; outputs and logs are checked apart
            check_storable(data)
        encoded = {name: items_to_json(items) for name, items in outputs.items()}
        raw = check_storable(encoded)
        blobs = self.services.blobs
        if blobs is not None and len(raw) > self.services.blob_threshold_bytes:
            stored = await blobs.put(raw, mime_type="application/json")
            data["outputs_ref"] = stored.ref
        else:
            data["outputs"] = encoded
        self._add_logs(data)
        await self._append(
            EventType.NODE_COMPLETED, compiled.spec.id, data, outputs, checked=True
        )

    async def _fail(
        self, compiled: CompiledNode, run: NodeRun, error: NodeError, inputs: list[list[Item]]
    ) -> bool:
        node_id = compiled.spec.id
        mode = compiled.spec.on_error
        if mode is OnError.STOP:
            failure: dict[str, Any] = {
                "run": run.index, "attempt": run.attempts, "error": _error_json(error),
            }  # fmt: skip
            self._add_logs(failure)
            await self._append(EventType.NODE_FAILED, node_id, failure)
            await self._end(
                EventType.EXECUTION_FAILED,
                {"error": {"message": error.message, "node_id": node_id}},
            )
            return False
        failed = [
            error_item(item, i, error.message) for i, item in enumerate(inputs[0] if inputs else [])
        ]
        outputs = {MAIN if mode is OnError.CONTINUE else ERROR_OUTPUT: failed}
        data = {
            "run": run.index,
            "outputs": {name: items_to_json(items) for name, items in outputs.items()},
            "error": _error_json(error),
        }
        self._add_logs(data)
        await self._append(EventType.NODE_COMPLETED, node_id, data, outputs)
        return True

    def _add_logs(self, data: dict[str, Any]) -> None:
        logs = self._context.logs if self._context is not None else []
        if logs:
            kept = logs[:MAX_LOG_LINES]
            try:
                check_storable(kept)
            except UnstorableValue:
                kept = scrubbed(kept)  # a log line quoting a bad value: repaired, not fatal
            data["logs"] = kept


def _with_lineage(
    compiled: CompiledNode, result: NodeResult, inputs: list[list[Item]]
) -> dict[str, list[Item]]:
    """Give every output item its `paired` links, applying the node type's lineage rule."""
    known = set(compiled.outputs)
    identity: dict[int, Pair] | None = None
    outputs: dict[str, list[Item]] = {}
    for name, items in result.outputs.items():
        if name not in known:
            raise NodeError(f"the node produced items on an unknown output {name!r}")
        if not items:
            continue
        if identity is None:
            identity = {id(item): Pair(k, i) for k, inp in enumerate(inputs)
                        for i, item in enumerate(inp)}  # fmt: skip
        outputs[name] = [
            _link(item, j, identity, compiled.node.lineage, len(items), inputs)
            for j, item in enumerate(items)
        ]
    return outputs


def _link(
    item: Item,
    position: int,
    identity: Mapping[int, Pair],
    lineage: Lineage,
    count: int,
    inputs: list[list[Item]],
) -> Item:
    own = identity.get(id(item))
    if own is not None:
        return Item(item.json, (own,), item.binary)
    if item.paired is not None:
        return item
    if lineage is Lineage.MANY_TO_ONE:
        links = tuple(Pair(k, i) for k, inp in enumerate(inputs) for i in range(len(inp)))
    elif lineage in (Lineage.ONE_TO_ONE, Lineage.EXPLICIT) and inputs and count == len(inputs[0]):
        links = (Pair(0, position),)
    else:
        links = ()
    return Item(item.json, links, item.binary)
