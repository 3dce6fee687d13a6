"""The small interface the engine sees: errors, `Expression` and `Dialect`.

Nothing here knows about Jinja, so that a second dialect (n8n's `={{ }}`
JavaScript) can plug in behind the same protocols without touching nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = ["Dialect", "Expression", "ExpressionError", "ExpressionSyntaxError"]


class ExpressionError(Exception):
    """An expression failed to compile or to evaluate.

    `message` is written for the workflow author: it names what failed and never
    shows Python internals (class names, tracebacks). `position` is the 0-based
    offset in the source of the failing `{{ ... }}` block, or of the syntax
    error; None when unknown. The engine prefixes node id and parameter name.
    """

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return self.message

    def at(self, position: int) -> ExpressionError:
        """The same error located at `position`, unless it already has a position."""
        if self.position is not None:
            return self
        return type(self)(self.message, position=position)


class ExpressionSyntaxError(ExpressionError):
    """The source does not parse (raised by `Dialect.compile`)."""


class Expression(Protocol):
    """A compiled parameter string, evaluated once per item."""

    @property
    def source(self) -> str:
        """The string the expression was compiled from."""
        ...

    @property
    def is_static(self) -> bool:
        """True when the source holds no `{{ }}` at all; `evaluate` then returns `source`."""
        ...

    def evaluate(self, scope: Mapping[str, object]) -> object:
        """The JSON-compatible value of the expression in `scope`; raises `ExpressionError`."""
        ...


class Dialect(Protocol):
    """An expression language: recognises and compiles parameter strings."""

    @property
    def name(self) -> str:
        """Stable identifier of the dialect, e.g. "jinja"."""
        ...

    def is_expression(self, value: str) -> bool:
        """Whether `value` must be compiled (holds `{{ ... }}`) rather than used as written."""
        ...

    def compile(self, source: str) -> Expression:
        """Compile (cached); raises `ExpressionSyntaxError` with a position."""
        ...
