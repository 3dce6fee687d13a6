"""The Jinja sandbox every expression runs in, and its notion of a missing value.

On top of Jinja's `ImmutableSandboxedEnvironment` (no private attributes, no
mutation of lists and dicts, a sandboxed `str.format`):

- Object keys win over attributes: `json.items` is the key "items" when the
  item has one. A missing key is a `Missing` value that chains
  (`json.a.b.c` is null) and equals `none`.
- Names starting with `__` are refused everywhere, other `_` names on anything
  but objects; the refusal is an error, never a silent empty value.
- Every arithmetic operator is intercepted: results that would be huge are
  refused before they are computed, and type errors get plain messages.
- Calls to string methods that amplify (`ljust`, `center`, `replace`...) are
  bounded the same way.

`getattr` and `getitem` here are also what the fast path for plain look-ups
uses, so both paths agree by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import BuiltinMethodType
from typing import Any, NoReturn

from jinja2 import ChainableUndefined, Undefined
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, modifies_known_mutable

from linkflow.engine.expressions._budget import tick
from linkflow.engine.expressions._convert import describe
from linkflow.engine.expressions._limits import (
    MAX_INT_BITS,
    MAX_RANGE,
    check_items,
    check_percent_format,
    check_str_format,
    check_text,
)
from linkflow.engine.expressions._protocol import ExpressionError

__all__ = ["Missing", "Sandbox", "bounded_range"]

#: dict methods reachable as `json.get(...)`, `json.keys()` when no such key exists.
_DICT_METHODS = frozenset({"get", "keys", "values", "items"})


class Missing(ChainableUndefined):
    """A missing key or attribute: null in results, "" in text, chains on access."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name = self._undefined_name
        if name is not None:
            return f"'{name}' is undefined"
        return "a value is undefined"

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, Undefined)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return id(type(self))

    def _compare(self, op: str) -> NoReturn:
        raise ExpressionError(f"cannot compare using '{op}': {self._undefined_message}")

    def __lt__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._compare("<")

    def __le__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._compare("<=")

    def __gt__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._compare(">")

    def __ge__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._compare(">=")

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ExpressionError(f"{self._undefined_message}, so it cannot be called")


def _refused(obj: object, name: str) -> ExpressionError:
    if modifies_known_mutable(obj, name):
        return ExpressionError(f"'{name}' is not allowed: values are read-only in expressions")
    return ExpressionError(f"access to '{name}' is not allowed")


def _check_repeat(left: object, right: object) -> None:
    sequence, times = (left, right) if isinstance(right, int) else (right, left)
    if not isinstance(times, int) or times <= 0:
        return
    if isinstance(sequence, str):
        check_text(len(sequence) * times, "the repeated text")
    elif isinstance(sequence, list | tuple):
        check_items(len(sequence) * times, "the repeated list")
    elif isinstance(sequence, int) and sequence.bit_length() + times.bit_length() > MAX_INT_BITS:
        raise ExpressionError(f"the product is too large (limit {MAX_INT_BITS} bits)")


def _check_power(base: object, exponent: object) -> None:
    if not isinstance(base, int) or not isinstance(exponent, int) or exponent <= 0:
        return
    if abs(base) > 1 and exponent * math.log2(abs(base)) > MAX_INT_BITS:
        raise ExpressionError(f"the power is too large (limit {MAX_INT_BITS} bits)")


def _check_add(left: object, right: object) -> None:
    if isinstance(left, str) and isinstance(right, str):
        check_text(len(left) + len(right))
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        check_items(len(left) + len(right))


def _check_modulo(left: object, right: object) -> None:
    if isinstance(left, str):
        check_percent_format(left, right)


_PLAIN_NUMBERS = frozenset({int, float})
#: Operators that cannot blow up or leave the real numbers on ints and floats.
_SAFE_OPS = frozenset({"+", "-", "/", "//", "%"})

_BINOP_CHECKS: dict[str, Callable[[object, object], None]] = {
    "*": _check_repeat,
    "**": _check_power,
    "+": _check_add,
    "%": _check_modulo,
}


def _int_arg(args: tuple[Any, ...], index: int) -> int:
    value = args[index] if len(args) > index else 0
    return value if isinstance(value, int) else 0


def _check_str_method(text: str, name: str, args: tuple[Any, ...]) -> None:
    if name in ("center", "ljust", "rjust", "zfill"):
        check_text(_int_arg(args, 0), f"the result of {name}")
    elif name == "expandtabs":
        check_text(len(text) + text.count("\t") * _int_arg(args, 0), "the expanded text")
    elif name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        hits = text.count(old) if old else len(text) + 1
        check_text(len(text) + hits * max(len(new) - len(old), 0), "the replaced text")
    elif name == "join" and args:
        parts = args[0]
        if isinstance(parts, list | tuple | str):
            sizes = sum(len(p) for p in parts if isinstance(p, str))
            check_text(sizes + len(text) * max(len(parts) - 1, 0), "the joined text")


class Sandbox(ImmutableSandboxedEnvironment):
    """The environment of the Jinja dialect (see the module docstring)."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def __init__(self) -> None:
        # No constant folding: it would run filters at compile time, and Jinja
        # folds some values (inf, nan) into code that cannot run.
        super().__init__(undefined=Missing, autoescape=False, cache_size=0, optimized=False)

    # -- attribute and item access -------------------------------------------

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:  # the common case: a key of a JSON object
            try:
                return obj[attribute]
            except KeyError:
                pass
        return self._attribute(obj, attribute)

    def _attribute(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Undefined):
            return obj
        if isinstance(obj, Mapping):
            if attribute in obj:
                return obj[attribute]
            if attribute.startswith("__"):
                raise _refused(obj, attribute)
            if attribute in _DICT_METHODS and isinstance(obj, dict):
                return getattr(obj, attribute)
            return self.undefined(obj=obj, name=attribute)
        if attribute.startswith("_"):
            raise _refused(obj, attribute)
        try:
            value = getattr(obj, attribute)
        except AttributeError:
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                return self.undefined(obj=obj, name=attribute)
        formatter = self.wrap_str_format(value)
        if formatter is not None:
            return formatter
        if not self.is_safe_attribute(obj, attribute, value):
            raise _refused(obj, attribute)
        return value

    def getitem(self, obj: Any, argument: Any) -> Any:
        kind = type(obj)
        if kind is dict:
            try:
                return obj[argument]
            except (KeyError, TypeError):
                pass
        elif kind is list and type(argument) is int:
            try:
                return obj[argument]
            except IndexError:
                return self._missing(obj, argument)
        return self._item(obj, argument)

    def _item(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Undefined):
            return obj
        if isinstance(obj, Mapping):
            try:
                return obj[argument]
            except (KeyError, TypeError):
                if isinstance(argument, str) and argument.startswith("__"):
                    raise _refused(obj, argument) from None
                return self._missing(obj, argument)
        try:
            return obj[argument]
        except (TypeError, LookupError):
            if isinstance(argument, str):
                return self._attribute(obj, argument)
            return self._missing(obj, argument)

    def _missing(self, obj: Any, key: Any) -> Undefined:
        if isinstance(key, str):
            return self.undefined(obj=obj, name=key)
        return self.undefined(f"item {key!r} does not exist", obj=obj)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise _refused(obj, attribute)

    # -- calls and operators -------------------------------------------------

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        sandboxed = super().wrap_str_format(value)
        if sandboxed is None:
            return None
        template: str = value.__self__
        is_format_map = value.__name__ == "format_map"

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if is_format_map and len(args) == 1 and isinstance(args[0], Mapping):
                check_str_format(template, (), args[0])
            else:
                check_str_format(template, args, kwargs)
            return sandboxed(*args, **kwargs)

        return bounded_format

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        if isinstance(__obj, BuiltinMethodType) and isinstance(__obj.__self__, str):
            _check_str_method(__obj.__self__, __obj.__name__, args)
        if not __self.is_safe_callable(__obj):
            raise ExpressionError("this function cannot be called in expressions")
        return __context.call(__obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if type(left) in _PLAIN_NUMBERS and type(right) in _PLAIN_NUMBERS and operator in _SAFE_OPS:
            return self.binop_table[operator](left, right)  # the common case, nothing to check
        tick()
        for side in (left, right):
            if isinstance(side, Undefined):
                raise ExpressionError(f"cannot use '{operator}': {side._undefined_message}")
        check = _BINOP_CHECKS.get(operator)
        if check is not None:
            check(left, right)
        try:
            result = self.binop_table[operator](left, right)
        except TypeError:
            raise ExpressionError(
                f"cannot apply '{operator}' to {describe(left)} and {describe(right)}"
            ) from None
        if isinstance(result, complex):
            raise ExpressionError("the result is not a real number")
        return result

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        if isinstance(arg, Undefined):
            raise ExpressionError(f"cannot use '{operator}': {arg._undefined_message}")
        try:
            return self.unop_table[operator](arg)
        except TypeError:
            raise ExpressionError(f"cannot apply '{operator}' to {describe(arg)}") from None


def bounded_range(*args: int) -> range:
    """`range()` capped at `MAX_RANGE` numbers."""
    try:
        numbers = range(*args)
    except ValueError:
        raise ExpressionError("range() step must not be zero") from None
    except TypeError:
        raise ExpressionError("range() takes whole numbers") from None
    if len(numbers) > MAX_RANGE:
        raise ExpressionError(f"range() is too large (limit {MAX_RANGE:,} numbers)")
    return numbers
