"""The split-out node: one item per element of a list field."""

from __future__ import annotations

from typing import Any, ClassVar

from linkflow.nodes.builtin._common import (
    MISSING,
    Params,
    delete_path,
    get_path,
    set_path,
    split_path,
)
from linkflow.nodes.sdk import (
    Item,
    JsonObject,
    Lineage,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    map_items,
)

__all__ = ["NODES", "SplitOut"]


class SplitOut(Node):
    type = "split_out"
    display_name = "Split Out"
    group = NodeGroup.DATA
    description = (
        "Makes one item per element of the list at `field` in each item; each descends from "
        "the item it was split from. With `include: none`, an element that is an object "
        "becomes the item itself (unless `destination` is set) and any other element becomes "
        "`{<destination>: element}`; "
        "with `other_fields`, the item's other fields are kept and the element is put at "
        "`destination`. An empty list yields no items; a missing field or one that is not a "
        "list is an error for that item."
    )
    lineage = Lineage.ONE_TO_MANY
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "field": {
                "type": "string",
                "description": "Dotted path of the list to split, e.g. `order.lines`.",
            },
            "destination": {
                "type": "string",
                "description": (
                    "Dotted path where the element goes (default: the last segment of `field`)."
                ),
            },
            "include": {
                "type": "string",
                "enum": ["none", "other_fields"],
                "description": (
                    "`none`: the element only; `other_fields`: plus the item's other fields."
                ),
                "default": "none",
            },
        },
        "required": ["field"],
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)

        def split(item: Item, index: int) -> list[Item]:
            field = params.text("field", index)
            named = params.optional_text("destination", index)
            destination = named or split_path(field)[-1]
            elements = _list_at(item.json, field, index)
            others = None
            if params.text("include", index) == "other_fields":
                others = _other_fields(item.json, field)
            return [
                item.derive(_element_json(e, destination, others, named is not None), index)
                for e in elements
            ]

        return map_items(ctx, split)


def _list_at(json: JsonObject, field: str, index: int) -> list[Any]:
    elements = get_path(json, field)
    if elements is MISSING:
        raise NodeError(f"field '{field}' is missing in item {index}", item_index=index)
    if not isinstance(elements, list):
        raise NodeError(
            f"field '{field}' in item {index} is {_json_type(elements)}, not a list",
            item_index=index,
        )
    return elements


def _other_fields(json: JsonObject, field: str) -> JsonObject:
    rest = dict(json)
    delete_path(rest, field)
    return rest


def _element_json(
    element: Any, destination: str, others: JsonObject | None, named: bool
) -> JsonObject:
    # An object element is the item itself, unless a destination was asked for.
    if others is None and not named and isinstance(element, dict):
        return element
    json = dict(others) if others is not None else {}
    set_path(json, destination, element)
    return json


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an object"


NODES: tuple[type[Node], ...] = (SplitOut,)
