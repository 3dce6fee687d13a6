"""Expressions in node parameters: `{{ ... }}` evaluated in a sandbox.

The engine sees only the `Dialect` and `Expression` protocols and the two
errors; `JinjaDialect` is today's implementation. See docs/expressions.md.
"""

from __future__ import annotations

from linkflow.engine.expressions._budget import end_run, start_run
from linkflow.engine.expressions._jinja import JinjaDialect
from linkflow.engine.expressions._protocol import (
    Dialect,
    Expression,
    ExpressionError,
    ExpressionSyntaxError,
)

__all__ = [
    "Dialect",
    "Expression",
    "ExpressionError",
    "ExpressionSyntaxError",
    "JinjaDialect",
    "end_run",
    "start_run",
]
