"""Turning Python and Jinja exceptions into messages for the workflow author.

Python's own messages name classes ("'dict' object...", "NoneType"); they are
rewritten into plain words, and anything not recognised becomes a generic
message rather than leaking internals. Exceptions that are not about the
expression itself (an engine error raised by a scope object, say) are not
translated: `translate` returns None for them and they propagate unchanged.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping

from jinja2.exceptions import SecurityError, TemplateError, UndefinedError

from linkflow.engine.expressions._convert import describe
from linkflow.engine.expressions._protocol import ExpressionError

__all__ = ["TRANSLATED", "call_error", "translate"]

#: Exception types that describe a failed operation inside an expression.
TRANSLATED: tuple[type[BaseException], ...] = (
    TemplateError,
    TypeError,
    ValueError,
    ArithmeticError,
    LookupError,
    AttributeError,
    RecursionError,
    MemoryError,
)

_TYPE_WORDS = {
    "str": "a string", "Markup": "a string", "int": "a number", "float": "a number",
    "Decimal": "a number", "decimal.Decimal": "a number", "bool": "a boolean",
    "NoneType": "null", "None": "null", "dict": "an object", "list": "a list",
    "tuple": "a list", "set": "a list", "frozenset": "a list", "generator": "a list",
    "range": "a list", "dict_keys": "a list", "dict_values": "a list", "dict_items": "a list",
    "datetime.datetime": "a datetime", "datetime": "a datetime", "datetime.date": "a date",
    "date": "a date", "datetime.timedelta": "a duration", "timedelta": "a duration",
    "function": "a function", "builtin_function_or_method": "a function",
    "method": "a function", "Missing": "a missing value",
}  # fmt: skip


def _word(python_type: str) -> str:
    return _TYPE_WORDS.get(python_type.strip("'\""), "a value")


def _compare(m: re.Match[str]) -> str:
    return f"cannot compare {_word(m[2])} with {_word(m[3])} using '{m[1]}'"


def _operands(m: re.Match[str]) -> str:
    return f"cannot apply '{m[1]}' to {_word(m[2])} and {_word(m[3])}"


_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"'(.+?)' not supported between instances of '(.+?)' and '(.+?)'"), _compare),
    (re.compile(r"unsupported operand type\(s\) for (.+?): '(.+?)' and '(.+?)'"), _operands),
    (re.compile(r'can only concatenate (\w+) \(not "(.+?)"\) to \w+'),
     lambda m: f"cannot add {_word(m[2])} to {_word(m[1])}"),
    (re.compile(r"can't multiply sequence by non-int of type '(.+?)'"),
     lambda m: f"text or a list can only be repeated a whole number of times, not {_word(m[1])}"),
    (re.compile(r"bad operand type for unary (.+?): '(.+?)'"),
     lambda m: f"cannot apply '{m[1]}' to {_word(m[2])}"),
    (re.compile(r"argument of type '(.+?)' is not (?:iterable|a container)"),
     lambda m: f"cannot use 'in' on {_word(m[1])}"),
    (re.compile(r"'(.+?)' object is not iterable"),
     lambda m: f"{_word(m[1])} is not a list"),
    (re.compile(r"'(.+?)' object is not callable"), lambda m: f"{_word(m[1])} is not a function"),
    (re.compile(r"'(.+?)' object is not subscriptable"),
     lambda m: f"{_word(m[1])} has no items to index"),
    (re.compile(r"sequence item \d+: expected str instance, (\S+) found"),
     lambda m: f"expected text, found {_word(m[1])}"),
    (re.compile(r"Object of type (\S+) is not JSON serializable"),
     lambda m: f"{_word(m[1])} cannot be converted to JSON"),
    (re.compile(r"invalid literal for int\(\) with base \d+: (.+)"),
     lambda m: f"{m[1]} is not a whole number"),
    (re.compile(r"could not convert string to float: (.+)"), lambda m: f"{m[1]} is not a number"),
    (re.compile(r"Exceeds the limit \(\d+ digits\)"),
     lambda m: "the number is too large to convert to or from text"),
    (re.compile(r"math domain error"), lambda m: "the number is outside the function's domain"),
    (re.compile(r"No filter named '(.+?)'"), lambda m: f"unknown filter '{m[1]}'"),
    (re.compile(r"No test named '(.+?)'"), lambda m: f"unknown test '{m[1]}'"),
]  # fmt: skip

_GENERIC: list[tuple[type[BaseException], str]] = [
    (ZeroDivisionError, "cannot divide by zero"),
    (OverflowError, "the number is too large"),
    (RecursionError, "the expression is nested too deeply"),
    (MemoryError, "the expression needs too much memory"),
    (UnicodeError, "the text cannot be encoded or decoded"),
    (TypeError, "a value has the wrong type for this operation"),
    (ValueError, "a value is not valid for this operation"),
    (LookupError, "the item does not exist"),
    (AttributeError, "the value has no such attribute"),
    (SecurityError, "this operation is not allowed in expressions"),
]


def _looks_internal(message: str) -> bool:
    return any(marker in message for marker in ("<", "__", " object", "0x", "Error", "\n"))


def _friendly(exc: BaseException) -> str | None:
    message = str(exc)
    for pattern, render in _PATTERNS:
        found = pattern.search(message)
        if found:
            return render(found)
    return None


def _generic(exc: BaseException) -> str:
    for kind, message in _GENERIC:
        if isinstance(exc, kind):
            return message
    return "the expression failed"


def translate(exc: BaseException) -> ExpressionError | None:
    """The user-facing error for `exc`, or None when it must propagate unchanged."""
    if isinstance(exc, ExpressionError):
        return exc
    if not isinstance(exc, TRANSLATED):
        return None
    if isinstance(exc, UndefinedError):
        return ExpressionError(exc.message or "a value is undefined")
    if isinstance(exc, ArithmeticError | RecursionError | MemoryError | SecurityError):
        return ExpressionError(_generic(exc))
    friendly = _friendly(exc)
    if friendly is not None:
        return ExpressionError(friendly)
    if isinstance(exc, TemplateError) and exc.message and not _looks_internal(exc.message):
        return ExpressionError(exc.message.rstrip("."))
    return ExpressionError(_generic(exc))


def call_error(
    name: str,
    func: Callable[..., object],
    args: tuple[object, ...],
    kwargs: Mapping[str, object],
    exc: BaseException,
    subject: object,
) -> ExpressionError:
    """The error for filter or function `name` failing on `subject` (its first argument)."""
    if isinstance(exc, TypeError):
        try:
            inspect.signature(func).bind(*args, **kwargs)
        except TypeError as wrong_arguments:
            return ExpressionError(f"{name}: {wrong_arguments}")
        except ValueError:  # no signature available
            pass
    if isinstance(exc, ArithmeticError | RecursionError | MemoryError):
        return ExpressionError(f"{name}: {_generic(exc)}")
    friendly = _friendly(exc)
    if friendly is not None:
        return ExpressionError(f"{name}: {friendly}")
    return ExpressionError(f"{name} cannot be applied to {describe(subject)}")
