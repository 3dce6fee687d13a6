"""The merge node: joins the items of 2 to 10 inputs into one stream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from linkflow.nodes.builtin._common import MISSING, Params, canonical_json, get_path, is_expression
from linkflow.nodes.sdk import (
    Item,
    JsonObject,
    Lineage,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    Pair,
)

__all__ = ["NODES", "Merge"]

DEFAULT_INPUTS: Final = 2
MAX_INPUTS: Final = 10
"""Ten is more than any merge drawn by hand needs, and keeps the editor's node a sane size."""


@dataclass(frozen=True, slots=True)
class _Row:
    """A merged row under construction: its json, binaries and source items."""

    json: JsonObject
    paired: tuple[Pair, ...]
    binary: Mapping[str, JsonObject] | None

    @classmethod
    def of(cls, item: Item, input_number: int, index: int) -> _Row:
        return cls(item.json, (Pair(input_number, index),), item.binary)

    def join(self, other: _Row) -> _Row:
        binary = {**(self.binary or {}), **(other.binary or {})} or None
        return _Row({**self.json, **other.json}, self.paired + other.paired, binary)

    def item(self) -> Item:
        return Item(json=self.json, paired=self.paired, binary=self.binary)


class Merge(Node):
    type = "merge"
    display_name = "Merge"
    group = NodeGroup.FLOW
    description = (
        "Joins the items of its inputs. Runs once every input has settled and at least one "
        "delivered items. `append`: all items, input 0's first. `combine_by_key`: joins items "
        "whose `key` values are equal (JSON equality; items without the key never match), "
        "input by input like SQL (each pair of matches is one item), with `join` inner, left "
        "(keep input 0's unmatched) or outer (keep all unmatched). `combine_by_position`: "
        "item i of every input becomes one item. `choose_branch`: the items of input `input` "
        "pass through. Combined items are `{**item_of_input_0, **item_of_input_1, ...}` "
        "(later inputs win on equal keys) and descend from every item they combine."
    )
    inputs = DEFAULT_INPUTS
    lineage = Lineage.EXPLICIT
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "mode": {
                "type": "string",
                "enum": ["append", "combine_by_key", "combine_by_position", "choose_branch"],
                "description": "How the inputs are joined.",
                "default": "append",
            },
            "inputs": {
                "type": "integer",
                "minimum": 2,
                "maximum": MAX_INPUTS,
                "description": "Number of inputs, numbered from 0.",
                "default": DEFAULT_INPUTS,
            },
            "key": {
                "type": "string",
                "description": "combine_by_key: dotted path of the field to match items on.",
            },
            "join": {
                "type": "string",
                "enum": ["inner", "left", "outer"],
                "description": (
                    "combine_by_key: `inner` keeps matched items only, `left` also input 0's "
                    "unmatched items, `outer` every unmatched item."
                ),
                "default": "inner",
            },
            "include_unpaired": {
                "type": "boolean",
                "description": (
                    "combine_by_position: keep items past the end of the shortest input "
                    "(combined from the inputs that have an item there)."
                ),
                "default": False,
            },
            "input": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_INPUTS - 1,
                "description": "choose_branch: the input (from 0) whose items pass through.",
                "default": 0,
            },
        },
        "required": [],
        "additionalProperties": False,
    }

    def input_count(self, parameters: Mapping[str, Any]) -> int:
        count = parameters.get("inputs", DEFAULT_INPUTS)
        if isinstance(count, int) and not isinstance(count, bool):
            return min(max(count, DEFAULT_INPUTS), MAX_INPUTS)
        return DEFAULT_INPUTS

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        problems = []
        if is_expression(parameters.get("inputs")):
            problems.append("inputs must be a number, not an expression (it shapes the graph)")
        mode = parameters.get("mode", "append")
        if mode == "combine_by_key" and parameters.get("key") is None:
            problems.append("key is required when mode is combine_by_key")
        chosen = parameters.get("input", 0)
        count = self.input_count(parameters)
        if mode == "choose_branch" and isinstance(chosen, int) and chosen >= count:
            problems.append(f"input {chosen} does not exist: the node has {count} inputs")
        return problems

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        mode = params.text("mode")
        rows_per_input = [
            [_Row.of(item, number, index) for index, item in enumerate(items)]
            for number, items in enumerate(ctx.inputs)
        ]
        if mode == "combine_by_key":
            rows = _by_key(rows_per_input, params.text("key"), params.text("join"))
        elif mode == "combine_by_position":
            rows = _by_position(rows_per_input, params.flag("include_unpaired"))
        elif mode == "choose_branch":
            rows = _chosen(rows_per_input, params.integer("input"))
        else:
            rows = [row for rows in rows_per_input for row in rows]
        return NodeResult.main([row.item() for row in rows])


def _chosen(rows_per_input: Sequence[list[_Row]], number: int) -> list[_Row]:
    if number >= len(rows_per_input):
        raise NodeError(f"parameter 'input': input {number} does not exist")
    return rows_per_input[number]


def _by_position(rows_per_input: Sequence[list[_Row]], include_unpaired: bool) -> list[_Row]:
    lengths = [len(rows) for rows in rows_per_input]
    count = max(lengths) if include_unpaired else min(lengths)
    merged = []
    for position in range(count):
        present = [rows[position] for rows in rows_per_input if position < len(rows)]
        row = present[0]
        for other in present[1:]:
            row = row.join(other)
        merged.append(row)
    return merged


def _by_key(rows_per_input: Sequence[list[_Row]], key: str, join: str) -> list[_Row]:
    """Fold the inputs left to right, joining each on `key`."""
    if not rows_per_input:
        return []
    merged = rows_per_input[0]
    for right in rows_per_input[1:]:
        merged = _join_two(merged, right, key, join)
    return merged


def _join_two(left: list[_Row], right: list[_Row], key: str, join: str) -> list[_Row]:
    by_key: dict[str, list[int]] = {}
    for index, row in enumerate(right):
        match_key = _match_key(row, key)
        if match_key is not None:
            by_key.setdefault(match_key, []).append(index)
    merged: list[_Row] = []
    used: set[int] = set()
    for row in left:
        left_key = _match_key(row, key)
        matches = by_key.get(left_key, []) if left_key is not None else []
        merged.extend(row.join(right[index]) for index in matches)
        used.update(matches)
        if not matches and join in ("left", "outer"):
            merged.append(row)
    if join == "outer":
        merged.extend(row for index, row in enumerate(right) if index not in used)
    return merged


def _match_key(row: _Row, key: str) -> str | None:
    """The canonical JSON of the key's value; None when missing or null (never matches)."""
    value = get_path(row.json, key)
    if value is MISSING or value is None:
        return None
    return canonical_json(value)


NODES: tuple[type[Node], ...] = (Merge,)
