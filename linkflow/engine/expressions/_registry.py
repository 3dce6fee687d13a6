"""Building the sandbox with its filters, tests and functions.

Jinja's safe and useful built-in filters stay, with their meaning; the few that
can blow up memory get a size check first (`replace`, `join`, `center`,
`indent`, `wordwrap`, `format`, `batch`, `slice`), and `random` draws from the
scope's `_rng`. Removed: `pprint` (prints Python reprs) and `safe` (nothing is
auto-escaped). Of Jinja's globals, `range` (capped) and `dict` stay;
`lipsum`, `cycler`, `joiner` and `namespace` go (they need statements, which
parameters do not have, or make noise).

Library functions are plain Python; here they are adapted: missing values
arrive as None, randomness comes from the scope, and Python exceptions become
messages that name the filter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from jinja2 import Undefined, pass_context
from jinja2.runtime import Context

from linkflow.engine.expressions._budget import tick
from linkflow.engine.expressions._convert import to_json_value
from linkflow.engine.expressions._errors import call_error
from linkflow.engine.expressions._limits import (
    MAX_RANGE,
    check_items,
    check_percent_format,
    check_text,
)
from linkflow.engine.expressions._protocol import ExpressionError
from linkflow.engine.expressions._sandbox import Sandbox, bounded_range
from linkflow.engine.expressions.library import ENTRIES, SYSTEM_RNG, Entry, Rng

__all__ = ["REMOVED_FILTERS", "REMOVED_GLOBALS", "build_sandbox"]

REMOVED_FILTERS = frozenset({"pprint", "safe"})
REMOVED_GLOBALS = frozenset({"lipsum", "cycler", "joiner", "namespace"})

#: Exceptions a filter may raise for bad input, turned into messages naming the filter.
_INPUT_ERRORS = (TypeError, ValueError, ArithmeticError, LookupError, AttributeError)

Func = Callable[..., Any]


def _rng(context: Context) -> Rng:
    rng = context.get("_rng")
    return SYSTEM_RNG if rng is None else rng


def _none_for_missing(args: tuple[Any, ...]) -> tuple[Any, ...]:
    for arg in args:
        if isinstance(arg, Undefined):
            return tuple(None if isinstance(a, Undefined) else a for a in args)
    return args


def _invoke(name: str, func: Func, args: tuple[Any, ...], kwargs: dict[str, Any], skip: int) -> Any:
    tick()
    try:
        return func(*args, **kwargs)
    except ExpressionError:
        raise
    except _INPUT_ERRORS as exc:
        subject = args[skip] if len(args) > skip else None
        raise call_error(name, func, args, kwargs, exc, subject) from exc


def adapt_entry(entry: Entry) -> Func:
    """A library entry as a Jinja filter or global function."""
    name, func = entry.name, entry.func
    if entry.rng:

        @pass_context
        def with_rng(context: Context, *args: Any, **kwargs: Any) -> Any:
            kwargs = {k: None if isinstance(v, Undefined) else v for k, v in kwargs.items()}
            return _invoke(name, func, (_rng(context), *_none_for_missing(args)), kwargs, 1)

        return with_rng

    def plain(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            kwargs = {k: None if isinstance(v, Undefined) else v for k, v in kwargs.items()}
        return _invoke(name, func, _none_for_missing(args), kwargs, 0)

    plain.__name__ = name
    return plain


def _adapt_builtin(name: str, func: Func) -> Func:
    skip = 1 if hasattr(func, "jinja_pass_arg") else 0

    @wraps(func)
    def builtin(*args: Any, **kwargs: Any) -> Any:
        return _invoke(name, func, args, kwargs, skip)

    return builtin


# -- size checks for built-in filters that can amplify ---------------------------------
# Each check sees the filter's arguments without the context Jinja may pass first.


def _text(value: object) -> str:
    return "" if isinstance(value, Undefined) else str(value)


def _check_replace(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if len(args) >= 3:
        text, old, new = _text(args[0]), _text(args[1]), _text(args[2])
        hits = text.count(old) if old else len(text) + 1
        check_text(len(text) + hits * max(len(new) - len(old), 0), "the replaced text")


def _check_center(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    width = args[1] if len(args) > 1 else kwargs.get("width", 0)
    if isinstance(width, int):
        check_text(width, "the centered text")


def _check_indent(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text = _text(args[0]) if args else ""
    width = args[1] if len(args) > 1 else kwargs.get("width", 4)
    per_line = width if isinstance(width, int) else len(_text(width))
    check_text(len(text) + (text.count("\n") + 1) * per_line, "the indented text")


def _check_wordwrap(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text = _text(args[0]) if args else ""
    width = args[1] if len(args) > 1 else kwargs.get("width", 79)
    wrap = args[3] if len(args) > 3 else kwargs.get("wrapstring")
    lines = len(text) // max(width if isinstance(width, int) else 1, 1) + text.count("\n") + 1
    check_text(len(text) + lines * len(_text(wrap) or "\n"), "the wrapped text")


def _check_format(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if args:
        check_percent_format(_text(args[0]), kwargs or tuple(args[1:]))


def _check_count(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # batch() pads its last batch up to `linecount`; slice() loops `slices` times.
    count = args[1] if len(args) > 1 else kwargs.get("linecount", kwargs.get("slices", 0))
    if isinstance(count, int) and count > MAX_RANGE:
        raise ExpressionError(f"the count is too large (limit {MAX_RANGE:,})")


_CHECKS: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], None]] = {
    "replace": _check_replace,
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "format": _check_format,
    "batch": _check_count,
    "slice": _check_count,
}


def _checked(name: str, func: Func) -> Func:
    check = _CHECKS[name]
    skip = 1 if hasattr(func, "jinja_pass_arg") else 0  # the context Jinja passes first

    @wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check(args[skip:], kwargs)
        return func(*args, **kwargs)

    return checked


def _bounded_join(func: Func) -> Func:
    @wraps(func)
    def join(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> Any:
        items = list(value) if not isinstance(value, Undefined) else []
        check_items(len(items), "the joined list")
        size = sum(len(i) for i in items if isinstance(i, str)) + len(_text(d)) * len(items)
        check_text(size, "the joined text")
        return func(eval_ctx, items, d, attribute)

    return join


@pass_context
def _random(context: Context, seq: Any) -> Any:
    """Jinja's `random` filter, drawing from the scope's `_rng`."""
    items = list(seq)
    if not items:
        return context.environment.undefined("No random item, sequence was empty.")
    return items[min(int(_rng(context).random() * len(items)), len(items) - 1)]


def _json_dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(to_json_value(obj), **kwargs)


def build_sandbox() -> Sandbox:
    """A sandbox with the kept built-ins, the guards and the whole library installed."""
    env = Sandbox()
    filters: dict[str, Func] = {}
    for name, func in env.filters.items():
        if name in REMOVED_FILTERS:
            continue
        guarded = _checked(name, func) if name in _CHECKS else func
        if name == "join":
            guarded = _bounded_join(func)
        filters[name] = _adapt_builtin(name, guarded)
    filters["random"] = _random
    for entry in ENTRIES:
        if entry.filter:
            filters[entry.name] = adapt_entry(entry)
    env.filters = filters
    for name in REMOVED_GLOBALS:
        env.globals.pop(name, None)
    env.globals["range"] = bounded_range
    env.globals.update({e.name: adapt_entry(e) for e in ENTRIES if e.function})
    env.policies["json.dumps_function"] = _json_dumps
    return env
