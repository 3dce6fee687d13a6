"""Helpers shared by the built-in nodes: parameters, dotted paths, truthiness, ordering.

Parameters are read through `Params`, which evaluates them for an item, fills
in the schema's default, and validates the evaluated value against the
parameter's own JSON Schema. The engine validates literal parameters before a
run, but an expression's value is only known per item, so a node re-checks it
here and fails with a `NodeError` naming the parameter instead of tripping over
a wrong type later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from linkflow.nodes.sdk import (
    Item,
    JsonObject,
    Node,
    NodeContext,
    NodeError,
)

__all__ = [
    "CONDITION_SCHEMA",
    "MISSING",
    "OUTPUT_NAME_PATTERN",
    "Params",
    "canonical_json",
    "delete_path",
    "get_path",
    "is_expression",
    "is_truthy",
    "items_from_input",
    "set_path",
    "sort_key",
    "split_path",
    "timezone_problem",
]


class _Missing:
    """The value at a path that does not exist (distinct from JSON null)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

OUTPUT_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Output names follow the node-id rule, so they are safe in URLs and connections."""

# A string falls back to these when an expression was rendered into text, e.g.
# "{{ json.ok }} " renders Python's False as "False"; n8n users expect that to be false.
_FALSY_STRINGS: Final = frozenset({"", "false", "0", "no", "off", "null", "none"})


CONDITION_SCHEMA: Final[JsonObject] = {
    "description": (
        "Evaluated per item, usually an expression such as `{{ json.age >= 18 }}`; "
        "its value may be of any type and is judged by truthiness."
    ),
}
"""A condition parameter: any JSON value, so no `type`."""


def is_expression(value: object) -> bool:
    """Whether a raw parameter value holds an expression (known only at run time)."""
    return isinstance(value, str) and "{{" in value


# --- dotted paths -----------------------------------------------------------


def split_path(path: str) -> list[str]:
    """`"a.b.0"` → `["a", "b", "0"]`."""
    return path.split(".")


def get_path(data: Any, path: str) -> Any:
    """The value at a dotted path, or `MISSING`. Digit segments index into lists."""
    current = data
    for segment in split_path(path):
        if isinstance(current, Mapping):
            if segment not in current:
                return MISSING
            current = current[segment]
        elif isinstance(current, list) and _is_index(segment):
            index = int(segment)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def _is_index(segment: str) -> bool:
    return segment.isdigit() and segment.isascii()


def set_path(data: JsonObject, path: str, value: Any) -> None:
    """Set a dotted path in `data` (mutated), creating objects on the way.

    Nested objects on the way are copied before they change, so a caller that
    passes a shallow copy of an item's json never alters objects the input item
    shares with other items (copy-on-write instead of a deep copy per item).
    A segment whose current value is not an object is replaced by one, like
    lodash's `set` that n8n users know; lists are not indexed into here, so that
    `"tags.0"` names a key rather than silently growing a list.
    """
    segments = split_path(path)
    current = data
    for segment in segments[:-1]:
        child = current.get(segment)
        child = dict(child) if isinstance(child, dict) else {}
        current[segment] = child
        current = child
    current[segments[-1]] = value


def delete_path(data: JsonObject, path: str) -> None:
    """Remove a dotted path from `data` (mutated, copy-on-write like `set_path`)."""
    segments = split_path(path)
    current: Any = data
    for segment in segments[:-1]:
        child = current.get(segment)
        if not isinstance(child, dict):
            return
        child = dict(child)
        current[segment] = child
        current = child
    current.pop(segments[-1], None)


# --- values -----------------------------------------------------------------


def is_truthy(value: Any) -> bool:
    """JSON truthiness: null, false, 0, "", [] and {} are false; so are the strings
    "false", "0", "no", "off", "null" and "none" (any case, surrounding spaces ignored)."""
    if isinstance(value, str):
        return value.strip().lower() not in _FALSY_STRINGS
    return bool(value)


def canonical_json(value: Any) -> str:
    """A stable text form: sorted keys, no spaces; used to compare and hash values."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sort_key(value: Any) -> tuple[int, Any]:
    """A total order over JSON values: numbers < strings < booleans < lists and objects.

    Booleans are kept apart from numbers (Python would compare True == 1);
    lists and objects compare by their canonical JSON text.
    """
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (3, canonical_json(value))


def timezone_problem(name: str) -> list[str]:
    """Why `name` is not an IANA time zone; empty when it is one."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return [f"timezone {name!r} is not an IANA time zone name (e.g. Europe/Paris)"]
    return []


# --- parameters -------------------------------------------------------------


_DYNAMIC: dict[int, tuple[Mapping[str, Any], frozenset[str]]] = {}
"""`_dynamic_names` per parameters object (a compiled node's, so the same for every run
of a workflow version); the object is kept with its entry, so its id cannot be reused."""


def _dynamic_names(raw: Mapping[str, Any], properties: Mapping[str, JsonObject]) -> frozenset[str]:
    """The parameters whose value comes (partly) from an expression and must be checked
    against the schema per item."""
    cached = _DYNAMIC.get(id(raw))
    if cached is not None and cached[0] is raw:
        return cached[1]
    names = frozenset(
        name
        for name, value in raw.items()
        if _has_expression(value)
        and (isinstance(value, str) or not _leaves_unconstrained(properties.get(name)))
    )
    if len(_DYNAMIC) >= 4096:
        _DYNAMIC.clear()
    _DYNAMIC[id(raw)] = (raw, names)
    return names


class Params:
    """Reads a node's parameters for one activation, evaluated, defaulted and checked."""

    def __init__(self, ctx: NodeContext, node: Node) -> None:
        self._ctx = ctx
        self._properties: Mapping[str, JsonObject] = node.parameters_schema["properties"]
        # Values written literally were checked against the schema when the workflow was
        # compiled; only what an expression produced needs checking per item.
        self._dynamic = _dynamic_names(ctx.raw_parameters, self._properties)

    def get(self, name: str, index: int = 0) -> Any:
        """The value for item `index`; the schema default when absent, or when null and
        the schema does not allow null (there a given null means "none": `limit: null`
        is every row, not the default page); else None."""
        schema = self._properties[name]
        value = self._ctx.param(name, index, schema.get("default"))
        if value is None:
            if name in self._ctx.raw_parameters and _allows_null(schema):
                return None
            return schema.get("default")
        if name in self._dynamic:
            _validate(name, schema, value, index)
        return value

    def required(self, name: str, index: int = 0) -> Any:
        value = self.get(name, index)
        if value is None:
            raise NodeError(f"parameter '{name}' is required", item_index=index)
        return value

    def text(self, name: str, index: int = 0) -> str:
        value = self.required(name, index)
        return value if isinstance(value, str) else canonical_json(value)

    def optional_text(self, name: str, index: int = 0) -> str | None:
        value = self.get(name, index)
        if value is None:
            return None
        return value if isinstance(value, str) else canonical_json(value)

    def integer(self, name: str, index: int = 0) -> int:
        value = self.required(name, index)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise NodeError(f"parameter '{name}' must be an integer", item_index=index)
        return value

    def number(self, name: str, index: int = 0) -> float:
        value = self.required(name, index)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise NodeError(f"parameter '{name}' must be a number", item_index=index)
        return value

    def flag(self, name: str, index: int = 0) -> bool:
        return is_truthy(self.get(name, index))

    def array(self, name: str, index: int = 0) -> list[Any]:
        value = self.get(name, index)
        if value is None:
            return []
        if not isinstance(value, list):
            raise NodeError(f"parameter '{name}' must be a list", item_index=index)
        return value

    def mapping(self, name: str, index: int = 0) -> dict[str, Any]:
        value = self.get(name, index)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise NodeError(f"parameter '{name}' must be an object", item_index=index)
        return value


def _allows_null(schema: JsonObject) -> bool:
    kind = schema.get("type")
    return kind == "null" or (isinstance(kind, list) and "null" in kind)


_CONSTRAINING_KEYWORDS = frozenset(
    {"properties", "patternProperties", "propertyNames", "items", "prefixItems", "contains",
     "additionalProperties", "enum", "const", "oneOf", "anyOf", "allOf", "not", "$ref"}
)  # fmt: skip


def _leaves_unconstrained(schema: JsonObject | None) -> bool:
    """True for a schema like `{"type": "object", "additionalProperties": true}`.

    Expressions nested in such a container cannot make it invalid: its shape was
    checked when the workflow was compiled, and any leaf value is allowed.
    """
    if schema is None:
        return False
    keys = {key for key, value in schema.items() if value is not True}
    return not keys & _CONSTRAINING_KEYWORDS


def _has_expression(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(_has_expression(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    return False


# Keyed by the schema's id; the schema is kept in the value so that the id cannot be reused.
_validators: dict[int, tuple[JsonObject, Draft202012Validator]] = {}


def _validate(name: str, schema: JsonObject, value: Any, index: int) -> None:
    cached = _validators.get(id(schema))
    if cached is None:
        cached = _validators[id(schema)] = (schema, Draft202012Validator(schema))
    error = best_match(cached[1].iter_errors(value))
    if error is None:
        return
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}"
                    for part in error.absolute_path)  # fmt: skip
    raise NodeError(f"parameter '{name}{where}': {error.message}", item_index=index)


# --- items ------------------------------------------------------------------


def items_from_input(value: Any) -> list[Item]:
    """An object is one item, a list one item per element, None one empty item.

    A list element or a whole input that is not an object becomes `{"value": x}`.
    Trigger items descend from nothing, hence `paired=()`.
    """
    if value is None:
        return [Item(json={}, paired=())]
    elements = value if isinstance(value, list) else [value]
    return [Item(json=_as_object(element), paired=()) for element in elements]


def _as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"value": value}


# --- routing ----------------------------------------------------------------
