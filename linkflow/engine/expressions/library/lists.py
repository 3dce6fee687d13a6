"""List filters: reshaping, set operations, keyed grouping, sampling.

Keys (`pluck`, `sort_by`, `group_by`...) are dotted paths into each element,
as in `get`: "customer.address.city" or "lines.0.sku".
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import orjson

from linkflow.engine.expressions._convert import to_json_value
from linkflow.engine.expressions._limits import check_items
from linkflow.engine.expressions._protocol import ExpressionError
from linkflow.engine.expressions.library._base import (
    Entry,
    Rng,
    as_int,
    as_list,
    get_path,
    render_text,
)

__all__ = ["ENTRIES"]


def _key_text(value: object) -> str:
    return "null" if value is None else render_text(value)


def flatten(value: object, depth: object = 1) -> list[object]:
    """Splice nested lists into one list, `depth` levels deep (-1: all levels)."""
    levels = as_int(depth, "the depth")
    out: list[object] = []
    for item in as_list(value):
        if isinstance(item, list | tuple) and levels != 0:
            out.extend(flatten(list(item), levels - 1))
        else:
            out.append(item)
    return out


def chunk(value: object, size: object) -> list[list[object]]:
    """Split into lists of `size` elements (the last may be shorter)."""
    step = as_int(size, "the size")
    if step < 1:
        raise ExpressionError("the chunk size must be at least 1")
    items = as_list(value)
    return [items[i : i + step] for i in range(0, len(items), step)]


def compact(value: object) -> list[object]:
    """Remove nulls and empty strings (0 and false stay)."""
    return [item for item in as_list(value) if item is not None and item != ""]


def pluck(value: object, path: object) -> list[object]:
    """The value at `path` in each element (null when absent)."""
    return [get_path(item, path) for item in as_list(value)]


def _sort_key(value: object) -> tuple[int, object]:
    if value is None:
        return (3, 0)
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, render_text(value))


def sort_by(value: object, path: object, reverse: object = False) -> list[object]:
    """Sort elements by the value at `path`; nulls go last."""
    items = as_list(value)
    ordered = sorted(items, key=lambda item: _sort_key(get_path(item, path)))
    if reverse:
        nulls = [item for item in ordered if get_path(item, path) is None]
        return [item for item in reversed(ordered) if get_path(item, path) is not None] + nulls
    return ordered


def group_by(value: object, path: object) -> dict[str, list[object]]:
    """An object of lists, keyed by the text of the value at `path`."""
    groups: dict[str, list[object]] = {}
    for item in as_list(value):
        groups.setdefault(_key_text(get_path(item, path)), []).append(item)
    return groups


def index_by(value: object, path: object) -> dict[str, object]:
    """An object keyed by the text of the value at `path` (the last element wins)."""
    return {_key_text(get_path(item, path)): item for item in as_list(value)}


def count_by(value: object, path: object) -> dict[str, int]:
    """How many elements share each value at `path`."""
    counts: dict[str, int] = {}
    for item in as_list(value):
        key = _key_text(get_path(item, path))
        counts[key] = counts.get(key, 0) + 1
    return counts


def zip_lists(*lists: object) -> list[list[object]]:
    """Pair up elements by position; stops at the shortest list."""
    return [list(group) for group in zip(*(as_list(v) for v in lists), strict=False)]


def _identity(item: object) -> Hashable:
    """Equal elements get equal identities; lists and objects compare by content."""
    try:
        hash(item)
    except TypeError:
        pass
    else:
        return item
    return ("\0json", orjson.dumps(to_json_value(item), option=orjson.OPT_SORT_KEYS))


def _distinct(items: list[object]) -> list[object]:
    seen: set[Hashable] = set()
    out: list[object] = []
    for item in items:
        identity = _identity(item)
        if identity not in seen:
            seen.add(identity)
            out.append(item)
    return out


def difference(value: object, other: object) -> list[object]:
    """Elements of the list that are not in `other` (order kept)."""
    excluded = {_identity(item) for item in as_list(other)}
    return [item for item in as_list(value) if _identity(item) not in excluded]


def intersection(value: object, other: object) -> list[object]:
    """Distinct elements present in both lists (order of the first)."""
    included = {_identity(item) for item in as_list(other)}
    return _distinct([item for item in as_list(value) if _identity(item) in included])


def union(value: object, other: object) -> list[object]:
    """Distinct elements of both lists, first list first."""
    return _distinct(as_list(value) + as_list(other))


def is_empty(value: object) -> bool:
    """True for null, "", [] and {} (0 and false are not empty)."""
    if value is None:
        return True
    if isinstance(value, str | list | tuple | Mapping | set | frozenset):
        return len(value) == 0
    return False


def take(value: object, count: object) -> list[object]:
    """The first `count` elements."""
    return as_list(value)[: max(as_int(count), 0)]


def skip(value: object, count: object) -> list[object]:
    """All but the first `count` elements."""
    return as_list(value)[max(as_int(count), 0) :]


def find(value: object, path: object, expected: object) -> object:
    """The first element whose value at `path` equals `expected`; null when none."""
    for item in as_list(value):
        if get_path(item, path) == expected:
            return item
    return None


def without(value: object, *excluded: object) -> list[object]:
    """The list without the given values."""
    return [item for item in as_list(value) if item not in excluded]


def append(value: object, *items: object) -> list[object]:
    """A new list with `items` added at the end."""
    out = [*as_list(value), *items]
    check_items(len(out))
    return out


def shuffle(rng: Rng, value: object) -> list[object]:
    """A new list in random order (randomness from the execution, so replays agree)."""
    items = list(as_list(value))
    for i in range(len(items) - 1, 0, -1):
        j = min(int(rng.random() * (i + 1)), i)
        items[i], items[j] = items[j], items[i]
    return items


ENTRIES = (
    Entry("flatten", flatten),
    Entry("chunk", chunk),
    Entry("compact", compact),
    Entry("pluck", pluck),
    Entry("sort_by", sort_by),
    Entry("group_by", group_by),
    Entry("index_by", index_by),
    Entry("count_by", count_by),
    Entry("zip", zip_lists, function=True),
    Entry("difference", difference),
    Entry("intersection", intersection),
    Entry("union", union),
    Entry("is_empty", is_empty),
    Entry("take", take),
    Entry("skip", skip),
    Entry("find", find),
    Entry("without", without),
    Entry("append", append),
    Entry("shuffle", shuffle, rng=True),
)
