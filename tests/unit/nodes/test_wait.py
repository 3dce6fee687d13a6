"""The wait node: the execution waits durably and continues on time or by webhook."""

from __future__ import annotations

from datetime import timedelta

import pytest

from linkflow.engine import InMemoryHistory, InvalidWorkflow, Resume
from tests.unit.engine._support import START, StepClock, document, edge, engine, info, node


def waiting(parameters: dict) -> dict:
    return document(
        [node("start", "manual"), node("pause", "wait", parameters=parameters),
         node("after", "set", parameters={"fields": {"done": True}})],
        [edge("start", "pause"), edge("pause", "after")],
    )  # fmt: skip


async def _run(doc: dict, clock: StepClock, history: InMemoryHistory, **kwargs: object):
    eng = engine()
    return await eng.run(eng.compile(doc), history=history, info=info(), clock=clock, **kwargs)


async def test_a_timed_wait_suspends_then_continues_once_the_time_has_come() -> None:
    """Status waiting with the resume time; too early nothing moves; later it completes."""
    clock, history = StepClock(), InMemoryHistory()
    first = await _run(waiting({"seconds": 60}), clock, history, input={"n": 1})
    assert first.status == "waiting"
    assert first.waiting is not None
    assert first.waiting["webhook"] is False
    event = first.events[-1]
    assert event.type == "execution.waiting"
    assert event.data["until"] is not None
    early = await _run(waiting({"seconds": 60}), clock, history)
    assert early.status == "waiting"
    clock.current += timedelta(seconds=61)
    done = await _run(waiting({"seconds": 60}), clock, history)
    assert done.status == "completed"
    assert done.output == [{"n": 1, "done": True}]
    assert [e.type for e in done.events].count("execution.resumed") == 1


async def test_a_webhook_wait_continues_with_what_the_caller_sent() -> None:
    """`resume: webhook` waits without a time; the resume payload reaches the items."""
    clock, history = StepClock(), InMemoryHistory()
    first = await _run(waiting({"resume": "webhook"}), clock, history, input={"n": 1})
    assert first.waiting == {"node_id": "pause", "run": 0, "webhook": True, "until": None}
    clock.current += timedelta(days=30)
    still = await _run(waiting({"resume": "webhook"}), clock, history)
    assert still.status == "waiting"
    done = await _run(waiting({"resume": "webhook"}), clock, history,
                      resume=Resume({"body": {"ok": True}}))  # fmt: skip
    assert done.output == [{"n": 1, "resume": {"body": {"ok": True}}, "done": True}]


async def test_a_webhook_wait_with_a_timeout_continues_after_it() -> None:
    """`timeout_s` bounds a webhook wait; resuming by time passes the items unchanged."""
    clock, history = StepClock(), InMemoryHistory()
    await _run(waiting({"resume": "webhook", "timeout_s": 5}), clock, history, input={"n": 2})
    clock.current += timedelta(seconds=6)
    done = await _run(waiting({"resume": "webhook", "timeout_s": 5}), clock, history)
    assert done.output == [{"n": 2, "done": True}]


async def test_a_timed_wait_cannot_be_resumed_by_webhook() -> None:
    """A resume call for an execution that waits for a time changes nothing."""
    clock, history = StepClock(), InMemoryHistory()
    await _run(waiting({"seconds": 600}), clock, history, input={})
    again = await _run(waiting({"seconds": 600}), clock, history, resume=Resume({"x": 1}))
    assert again.status == "waiting"


async def test_a_time_already_past_does_not_wait() -> None:
    """`until` in the past passes the items straight on."""
    result = await _run(waiting({"until": (START - timedelta(hours=1)).isoformat()}),
                        StepClock(), InMemoryHistory(), input={"n": 3})  # fmt: skip
    assert result.status == "completed"


async def test_until_may_be_an_expression_and_a_naive_time_is_utc() -> None:
    """`until` from an expression; without an offset it is read as UTC."""
    clock, history = StepClock(), InMemoryHistory()
    result = await _run(waiting({"until": "{{ json.at }}"}), clock, history,
                        input={"at": "2026-01-15T11:00:00"})  # fmt: skip
    assert result.waiting is not None
    assert result.waiting["until"] == "2026-01-15T11:00:00+00:00"


async def test_waiting_time_does_not_count_against_the_workflow_timeout() -> None:
    """A one-hour wait in a workflow with a 10 s timeout still completes."""
    clock, history = StepClock(), InMemoryHistory()
    doc = waiting({"seconds": 3600})
    doc["settings"] = {"timeout_s": 10}
    await _run(doc, clock, history, input={})
    clock.current += timedelta(hours=2)
    done = await _run(doc, clock, history)
    assert done.status == "completed"


@pytest.mark.parametrize(
    "parameters", [{}, {"seconds": 1, "resume": "webhook"}, {"seconds": 5, "timeout_s": 3}]
)
def test_exactly_one_way_of_waiting_is_required(parameters: dict) -> None:
    """The document is refused unless it names one of seconds, until, resume."""
    with pytest.raises(InvalidWorkflow):
        engine().compile(waiting(parameters))


async def test_a_wait_longer_than_a_year_is_refused() -> None:
    """An absurd wait is an error, not a silent year-long hold."""
    result = await _run(waiting({"seconds": 400 * 86400}), StepClock(), InMemoryHistory(),
                        input={})  # fmt: skip
    assert result.status == "failed"
    assert "at most 366 days" in result.error["message"]
