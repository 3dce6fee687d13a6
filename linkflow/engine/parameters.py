"""Node parameters compiled once per document, evaluated per item.

Every string holding an expression is compiled when the workflow is compiled,
so a run only evaluates. A parameter without any expression is marked static
and handed to the node as written, at no cost per item.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from linkflow.engine.expressions import Dialect, Expression, ExpressionError, ExpressionSyntaxError

__all__ = ["CompiledParameters", "ParameterError", "compile_parameters"]


class ParameterError(Exception):
    """An expression in a parameter failed; says which parameter and where."""

    def __init__(self, parameter: str, error: ExpressionError) -> None:
        where = f" at position {error.position}" if error.position is not None else ""
        super().__init__(f"parameter {parameter!r}{where}: {error.message}")
        self.parameter = parameter
        self.position = error.position
        self.reason = error.message


@dataclass(frozen=True, slots=True)
class _Dynamic:
    """A subtree with at least one expression; `value` mirrors the raw shape."""

    value: Any


def _compile(value: Any, dialect: Dialect, path: str, errors: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        if not dialect.is_expression(value):
            return value
        try:
            return _Dynamic(dialect.compile(value))
        except ExpressionSyntaxError as error:
            where = f" at position {error.position}" if error.position is not None else ""
            errors.append((path, f"expression does not parse{where}: {error.message}"))
            return value
    if isinstance(value, dict):
        compiled = {k: _compile(v, dialect, f"{path}.{k}", errors) for k, v in value.items()}
        if any(isinstance(v, _Dynamic) for v in compiled.values()):
            return _Dynamic(compiled)
        return value
    if isinstance(value, list):
        items = [_compile(v, dialect, f"{path}.{i}", errors) for i, v in enumerate(value)]
        if any(isinstance(v, _Dynamic) for v in items):
            return _Dynamic(items)
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
    return expression.evaluate(scope)


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
        try:
            return _evaluate(value, scope)
        except ExpressionError as error:
            raise ParameterError(name, error) from None


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
