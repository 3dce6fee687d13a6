"""Retries with backoff, timeouts, on_error modes, cancellation, node errors."""

from __future__ import annotations

import pytest

from tests.unit.engine._nodes import Calls
from tests.unit.engine._support import StepClock, document, edge, node, run


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    Calls.reset()


def _flaky(**fields: object) -> dict:
    return document(
        [node("start", "manual"), node("call", "test_flaky", **fields), node("after", "noop")],
        [edge("start", "call"), edge("call", "after")],
    )


async def test_a_retryable_failure_is_retried_with_exponential_backoff() -> None:
    """Two failures then success: delays 0.5 s and 1 s, the item reports attempt 3."""
    Calls.failures_left["call"] = 2
    clock = StepClock()
    doc = _flaky(retry={"max_attempts": 3, "backoff_s": 0.5})
    result = await run(doc, {}, clock=clock)
    assert result.status == "completed"
    assert result.output == [{"attempt": 3}]
    assert clock.slept == [0.5, 1.0]
    retrying = [e for e in result.events if e.type == "node.retrying"]
    assert [e.data["attempt"] for e in retrying] == [1, 2]


async def test_backoff_is_capped_by_max_backoff() -> None:
    """Delays double up to `max_backoff_s` and stay there."""
    Calls.failures_left["call"] = 4
    clock = StepClock()
    doc = _flaky(retry={"max_attempts": 5, "backoff_s": 1, "max_backoff_s": 3})
    await run(doc, {}, clock=clock)
    assert clock.slept == [1, 2, 3, 3]


async def test_retry_after_from_the_node_overrides_the_backoff() -> None:
    """A node's `retry_after_s` (e.g. a Retry-After header) is the delay used."""
    Calls.failures_left["call"] = 1
    clock = StepClock()
    doc = _flaky(retry={"max_attempts": 2, "backoff_s": 5},
                 parameters={"retry_after_s": 0.25})  # fmt: skip
    await run(doc, {}, clock=clock)
    assert clock.slept == [0.25]


async def test_a_non_retryable_error_fails_at_once() -> None:
    """`retryable=False` skips the retry policy and fails the execution with the node id."""
    Calls.failures_left["call"] = 1
    doc = _flaky(retry={"max_attempts": 5}, parameters={"retryable": False})
    result = await run(doc, {})
    assert result.status == "failed"
    assert result.error == {"message": "attempt 1 failed", "node_id": "call"}
    assert Calls.counter[("call", 0)] == 1
    assert not result.ran("after")


async def test_exhausted_retries_fail_the_execution() -> None:
    """After max_attempts failures the execution fails with the last error."""
    Calls.failures_left["call"] = 10
    result = await run(_flaky(retry={"max_attempts": 3, "backoff_s": 0}), {})
    assert result.status == "failed"
    assert result.error["message"] == "attempt 3 failed"
    assert Calls.counter[("call", 0)] == 3


async def test_on_error_continue_passes_items_on_with_the_error() -> None:
    """With `continue`, the next node receives the input items plus an `error` key."""
    Calls.failures_left["call"] = 1
    result = await run(_flaky(on_error="continue"), {"id": 7})
    assert result.status == "completed"
    assert result.output == [{"id": 7, "error": {"message": "attempt 1 failed"}}]


async def test_on_error_output_routes_failed_items_to_the_error_output() -> None:
    """With `output`, failed items leave by `error`, good ones by `main`."""
    doc = document(
        [node("start", "manual"), node("check", "test_picky", on_error="output"),
         node("good", "noop"), node("bad", "noop")],
        [edge("start", "check"), edge("check", "good"), edge("check", "bad", "error")],
    )  # fmt: skip
    result = await run(doc, [{"ok": True, "n": 1}, {"ok": False, "n": 2}])
    assert result.output_of("good") == [{"ok": True, "n": 1}]
    assert result.output_of("bad") == [
        {"ok": False, "n": 2, "error": {"message": "item 1 is not ok"}}
    ]


async def test_the_error_output_is_refused_unless_on_error_is_output() -> None:
    """Connecting from `error` without `on_error: output` is a validation problem."""
    from linkflow.engine import InvalidWorkflow

    doc = document(
        [node("start", "manual"), node("check", "test_picky"), node("bad", "noop")],
        [edge("start", "check"), edge("check", "bad", "error")],
    )
    with pytest.raises(InvalidWorkflow, match="on_error"):
        await run(doc, {})


async def test_a_hanging_node_times_out_and_its_retries_are_used() -> None:
    """A node over its `timeout_s` fails as retryable; the message names the limit."""
    doc = document(
        [node("start", "manual"),
         node("slow", "test_hang", timeout_s=0.01, retry={"max_attempts": 2, "backoff_s": 0})],
        [edge("start", "slow")],
    )  # fmt: skip
    result = await run(doc, {})
    assert result.status == "failed"
    assert result.error["message"] == "the node timed out after 0.01 s"
    assert len([e for e in result.events if e.type == "node.retrying"]) == 1


async def test_the_workflow_timeout_stops_the_execution_as_timed_out() -> None:
    """`settings.timeout_s` bounds the whole run: status timeout, event timed_out."""
    doc = document(
        [node("start", "manual"), node("slow", "test_hang")], [edge("start", "slow")],
        timeout_s=0.05,
    )  # fmt: skip
    result = await run(doc, {})
    assert result.status == "timeout"
    assert result.events[-1].type == "execution.timed_out"
    assert "0.05" in result.error["message"]


async def test_an_unexpected_exception_becomes_a_node_error_without_internals() -> None:
    """A bug in a node fails the execution with a readable message, not a crash."""
    doc = document([node("start", "manual"), node("boom", "test_crash")], [edge("start", "boom")])
    result = await run(doc, {})
    assert result.status == "failed"
    assert result.error == {"message": "unexpected error: division by zero", "node_id": "boom"}


async def test_stop_and_error_fails_with_its_message() -> None:
    """The stop_and_error node's message becomes the execution's error."""
    doc = document(
        [node("start", "manual"),
         node("stop", "stop_and_error", parameters={"message": "bad {{ json.id }}"})],
        [edge("start", "stop")],
    )  # fmt: skip
    result = await run(doc, {"id": 4})
    assert result.error == {"message": "bad 4", "node_id": "stop"}


class _CancelAfter:
    """Requests cancellation once `count` node boundaries have passed."""

    def __init__(self, count: int) -> None:
        self.count = count

    async def requested(self) -> str | None:
        self.count -= 1
        return "stopped by user" if self.count < 0 else None


async def test_cancellation_stops_at_the_next_node_boundary() -> None:
    """A cancel request is honoured between nodes: later nodes never run."""
    doc = document(
        [node("start", "manual"), node("one", "test_count"), node("two", "test_count")],
        [edge("start", "one"), edge("one", "two")],
    )
    result = await run(doc, {}, cancellation=_CancelAfter(2))
    assert result.status == "cancelled"
    assert result.ran("one")
    assert not result.ran("two")
    assert result.events[-1].data == {"reason": "stopped by user"}


async def test_an_expression_error_names_node_parameter_and_position() -> None:
    """A failing expression reports which node, which parameter and where."""
    doc = document(
        [node("start", "manual"),
         node("calc", "set", parameters={"fields": {"x": "n = {{ json.n / 0 }}"}})],
        [edge("start", "calc")],
    )  # fmt: skip
    result = await run(doc, {"n": 1})
    assert result.status == "failed"
    assert result.error["node_id"] == "calc"
    assert "parameter 'fields.x', item 0," in result.error["message"]
    assert "expression 'n = {{ json.n / 0 }}' at position 4" in result.error["message"]
    assert "Traceback" not in result.error["message"]
