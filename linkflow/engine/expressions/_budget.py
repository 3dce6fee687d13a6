"""What one evaluation of an expression may spend: time, and memory in total.

An expression runs synchronously, on the worker's event loop: while it runs,
no other execution and no request of any tenant is served. The size checks of
`_limits` bound each value an expression builds; they do not bound how many it
builds (`range(150) | map('center', 9999999) | list` is 150 strings, each
under the limit), nor how long a chain of filters over a large input takes.

So each evaluation of a Jinja block runs under a `Budget` (`enter`/`leave`): every
filter and function call, method call and checked operator asks `tick()` whether
the evaluation is past its time, and every sized build (`_limits.check_text`,
`check_items`) is added up against the totals. An overrun is an `ExpressionError`
naming the limit: the node fails (not retryable: the same expression on the same
data overruns again) instead of freezing the process. One execution run has a total
of its own (`start_run`, opened by the executor): sized builds and returned text of
all its evaluations, which would otherwise add up across items.

The time check is cooperative, at those points: a single step between two of
them is bounded by the size limits (no statements or loops exist in
expressions, regular expressions run on RE2 in linear time).
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from typing import Final

from linkflow.engine.expressions._protocol import ExpressionError

__all__ = [
    "EVALUATION_ITEMS",
    "EVALUATION_TEXT",
    "EVALUATION_TIME_S",
    "EXECUTION_TEXT",
    "Budget",
    "RunBudget",
    "end_run",
    "enter",
    "leave",
    "spend_items",
    "spend_text",
    "start_run",
    "tick",
]

EVALUATION_TIME_S: Final = 0.5
"""Most one evaluation may run; real expressions take microseconds."""
EVALUATION_TEXT: Final = 20_000_000
"""Most characters one evaluation may build in total through sized operations."""
EVALUATION_ITEMS: Final = 2_000_000
"""Most list items one evaluation may build in total through sized operations."""
EXECUTION_TEXT: Final = 200_000_000
"""Most characters the expressions of one execution run may build and return in total:
what one evaluation builds is freed after it, what it returns is kept with the run's
outputs, so many evaluations each inside their budget could still fill the memory."""


class Budget:
    """The time and memory left to one evaluation."""

    __slots__ = ("deadline", "items", "text")

    def __init__(self, seconds: float = EVALUATION_TIME_S) -> None:
        self.deadline = time.perf_counter() + seconds
        self.text = EVALUATION_TEXT
        self.items = EVALUATION_ITEMS


class RunBudget:
    """The characters left to the expressions of one execution run."""

    __slots__ = ("text",)

    def __init__(self) -> None:
        self.text = EXECUTION_TEXT


_current: ContextVar[Budget | None] = ContextVar("linkflow_expression_budget", default=None)
_run: ContextVar[RunBudget | None] = ContextVar("linkflow_run_budget", default=None)


def start_run() -> Token[RunBudget | None]:
    """Start the budget of one execution run (its task's context); hand it to `end_run`."""
    return _run.set(RunBudget())


def end_run(token: Token[RunBudget | None]) -> None:
    _run.reset(token)


def enter() -> Token[Budget | None] | None:
    """Start an evaluation's budget; None when one is running already (a block evaluated
    inside another's filter keeps the outer budget). Hand the token to `leave`."""
    if _current.get() is not None:
        return None
    return _current.set(Budget())


def leave(token: Token[Budget | None] | None) -> None:
    """End the budget `enter` started."""
    if token is not None:
        _current.reset(token)


def tick() -> None:
    """Refuse to go on once the evaluation is past its time."""
    budget = _current.get()
    if budget is not None and time.perf_counter() > budget.deadline:
        raise ExpressionError(
            f"the expression ran longer than its limit of {EVALUATION_TIME_S:g} s; "
            "it would hold up every other execution"
        )


def spend_text(length: int) -> None:
    """Count `length` characters about to be built (or returned) against the evaluation's
    total and the execution run's."""
    run = _run.get()
    if run is not None:
        run.text -= length
        if run.text < 0:
            raise ExpressionError(
                f"this execution's expressions would build more than {EXECUTION_TEXT:,} "
                "characters in total"
            )
    budget = _current.get()
    if budget is None:
        return
    budget.text -= length
    if budget.text < 0:
        raise ExpressionError(
            f"the expression would build more than {EVALUATION_TEXT:,} characters in total"
        )


def spend_items(count: int) -> None:
    """Count `count` list items about to be built against the evaluation's total."""
    budget = _current.get()
    if budget is None:
        return
    budget.items -= count
    if budget.items < 0:
        raise ExpressionError(
            f"the expression would build more than {EVALUATION_ITEMS:,} list items in total"
        )
