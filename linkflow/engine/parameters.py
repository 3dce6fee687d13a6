"""Node parameters compiled once per document, evaluated per item.

Every string holding an expression is compiled when the workflow is compiled,
so a run only evaluates. A parameter without any expression is marked static
and handed to the node as written, at no cost per item. Each expression keeps
the path of the field it sits in (`fields.total`, `headers.0`, as validation
names it), so a failure at run time says where without any cost per item.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from linkflow.engine.expressions import Dialect, Expression, ExpressionError, ExpressionSyntaxError

__all__ = ["CompiledParameters", "ParameterError", "compile_parameters"]


SOURCE_SHOWN_CHARS = 200
"""How much of a failing expression's source an error quotes: enough to recognise it,
not a whole template pasted into every failed item."""


class ParameterError(Exception):
    """An expression in a parameter failed; says which field, which expression and where.

    `path` is the field's path from the parameter (`fields.total`, `rules.0.condition`),
    `source` the expression as written, `position` the offset in it (None when unknown).
    """

    def __init__(self, path: str, source: str, error: ExpressionError) -> None:
        super().__init__(self.describe_parts(path, source, error.position, None, error.message))
        self.path = path
        self.parameter = path.split(".", 1)[0]
        self.source = source
        self.position = error.position
        self.reason = error.message

    def describe(self, item_index: int | None) -> str:
        """The message, naming the input item that was being evaluated."""
        return self.describe_parts(self.path, self.source, self.position, item_index,
                                   self.reason)  # fmt: skip

    @staticmethod
    def describe_parts(
        path: str, source: str, position: int | None, item_index: int | None, reason: str
    ) -> str:
        shown = source if len(source) <= SOURCE_SHOWN_CHARS else source[:SOURCE_SHOWN_CHARS] + "…"
        item = f", item {item_index}" if item_index is not None else ""
        where = f" at position {position}" if position is not None else ""
        return f"parameter {path!r}{item}, expression {shown!r}{where}: {reason}"


@dataclass(frozen=True, slots=True)
class _Dynamic:
    """A subtree with at least one expression; `value` mirrors the raw shape, and `path`
    is where it sits (for a leaf expression, what an error names)."""

    value: Any
    path: str = ""


def _compile(value: Any, dialect: Dialect, path: str, errors: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        if not dialect.is_expression(value):
            return value
        try:
            return _Dynamic(dialect.compile(value), path)
        except ExpressionSyntaxError as error:
            where = f" at position {error.position}" if error.position is not None else ""
            errors.append((path, f"expression does not parse{where}: {error.message}"))
            return value
    if isinstance(value, dict):
        compiled = {k: _compile(v, dialect, f"{path}.{k}", errors) for k, v in value.items()}
        if any(isinstance(v, _Dynamic) for v in compiled.values()):
            return _Dynamic(compiled, path)
        return value
    if isinstance(value, list):
        items = [_compile(v, dialect, f"{path}.{i}", errors) for i, v in enumerate(value)]
        if any(isinstance(v, _Dynamic) for v in items):
            return _Dynamic(items, path)
        return value
    return value


def _evaluate(value: Any, scope: Mapping[str, object]) -> Any:
    if not isinstance(value, _Dynamic):
        return value
    inner = value.value
    if isinstance(inner, dict):
        return {k: _evaluate(v, scope) for k, v in inner.items()}
    if isinstance(inner, list):
        return [_evaluate(v, scope) for v in inner]
    expression: Expression = inner
    try:
        return expression.evaluate(scope)
    except ExpressionError as error:
        raise ParameterError(value.path, expression.source, error) from None


class CompiledParameters:
    """A node's parameters with their expressions compiled."""

    __slots__ = ("_compiled", "raw")

    def __init__(self, raw: Mapping[str, Any], compiled: Mapping[str, Any]) -> None:
        self.raw = raw
        self._compiled = compiled

    def is_static(self, name: str) -> bool:
        return not isinstance(self._compiled.get(name), _Dynamic)

    def get(self, name: str, scope: Mapping[str, object] | None, default: Any = None) -> Any:
        """Evaluate one parameter; `scope` may be None only for static parameters."""
        if name not in self._compiled:
            return default
        value = self._compiled[name]
        if not isinstance(value, _Dynamic):
            return value
        assert scope is not None
        return _evaluate(value, scope)


def compile_parameters(
    raw: Mapping[str, Any], raw_names: frozenset[str], dialect: Dialect
) -> tuple[CompiledParameters, list[tuple[str, str]]]:
    """Compile every expression; also return (parameter path, reason) for each that fails."""
    errors: list[tuple[str, str]] = []
    compiled = {
        name: value if name in raw_names else _compile(value, dialect, name, errors)
        for name, value in raw.items()
    }
    return CompiledParameters(raw, compiled), errors
