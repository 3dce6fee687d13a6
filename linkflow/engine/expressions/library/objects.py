"""Object (mapping) filters: keys and entries, merging, picking, dotted paths.

Values in expressions are read-only, so the "changing" filters (`merge`,
`set_path`, `omit`...) return new objects and leave their input untouched.
"""

from __future__ import annotations

from collections.abc import Mapping

from linkflow.engine.expressions._protocol import ExpressionError
from linkflow.engine.expressions.library._base import (
    Entry,
    as_list,
    as_mapping,
    as_text,
    get_path,
    path_parts,
)

__all__ = ["ENTRIES"]

_ABSENT = object()


def keys(value: object) -> list[str]:
    """The object's keys, in order."""
    return list(as_mapping(value))


def values(value: object) -> list[object]:
    """The object's values, in order."""
    return list(as_mapping(value).values())


def entries(value: object) -> list[list[object]]:
    """[key, value] pairs, in order."""
    return [[k, v] for k, v in as_mapping(value).items()]


def from_entries(value: object) -> dict[str, object]:
    """An object from [key, value] pairs (or objects with "key" and "value")."""
    out: dict[str, object] = {}
    for pair in as_list(value):
        if isinstance(pair, Mapping) and "key" in pair:
            out[as_text(pair["key"])] = pair.get("value")
        elif isinstance(pair, list | tuple) and len(pair) == 2:
            out[as_text(pair[0])] = pair[1]
        else:
            raise ExpressionError("from_entries expects [key, value] pairs")
    return out


def merge(*objects: object) -> dict[str, object]:
    """Shallow merge: later objects win; nulls are skipped."""
    out: dict[str, object] = {}
    for obj in objects:
        out.update(as_mapping(obj))
    return out


def _deep(base: Mapping[str, object], extra: Mapping[str, object]) -> dict[str, object]:
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            out[key] = _deep(current, value)
        else:
            out[key] = value
    return out


def deep_merge(*objects: object) -> dict[str, object]:
    """Recursive merge: nested objects are merged, anything else is replaced."""
    out: dict[str, object] = {}
    for obj in objects:
        out = _deep(out, as_mapping(obj))
    return out


def _names(names: tuple[object, ...]) -> list[str]:
    if len(names) == 1 and isinstance(names[0], list | tuple):
        return [as_text(n) for n in names[0]]
    return [as_text(n) for n in names]


def pick(value: object, *names: object) -> dict[str, object]:
    """Only the given keys (as arguments or one list); absent keys are left out."""
    obj = as_mapping(value)
    return {name: obj[name] for name in _names(names) if name in obj}


def omit(value: object, *names: object) -> dict[str, object]:
    """Everything except the given keys."""
    excluded = set(_names(names))
    return {k: v for k, v in as_mapping(value).items() if k not in excluded}


def get(value: object, path: object, default: object = None) -> object:
    """The value at a dotted path ("a.b.0.c"), or `default` when absent."""
    return get_path(value, path, default)


def has(value: object, path: object) -> bool:
    """Whether the dotted path exists (even when its value is null)."""
    return get_path(value, path, _ABSENT) is not _ABSENT


def _set(current: object, parts: list[str | int], new: object) -> object:
    if not parts:
        return new
    head, rest = parts[0], parts[1:]
    if isinstance(current, list) and isinstance(head, int):
        if not -len(current) <= head < len(current):
            raise ExpressionError(f"index {head} is outside the list")
        copy = list(current)
        copy[head] = _set(copy[head], rest, new)
        return copy
    obj = dict(current) if isinstance(current, Mapping) else {}
    key = str(head)
    obj[key] = _set(obj.get(key), rest, new)
    return obj


def set_path(value: object, path: object, new: object) -> object:
    """A copy with the value at a dotted path replaced; missing objects are created."""
    parts = path_parts(path)
    if not parts:
        raise ExpressionError("set_path needs a non-empty path")
    return _set(as_mapping(value) if not isinstance(value, list) else value, parts, new)


ENTRIES = (
    Entry("keys", keys),
    Entry("values", values),
    Entry("entries", entries),
    Entry("from_entries", from_entries),
    Entry("merge", merge, function=True),
    Entry("deep_merge", deep_merge),
    Entry("pick", pick),
    Entry("omit", omit),
    Entry("get", get),
    Entry("has", has),
    Entry("set_path", set_path),
)
