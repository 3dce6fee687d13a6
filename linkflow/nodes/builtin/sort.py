"""The sort node: orders items by one or more fields."""

from __future__ import annotations

from typing import Any, ClassVar

from linkflow.nodes.builtin._common import MISSING, Params, get_path, sort_key
from linkflow.nodes.sdk import Item, JsonObject, Node, NodeContext, NodeGroup, NodeResult

__all__ = ["NODES", "Sort"]


class Sort(Node):
    type = "sort"
    display_name = "Sort"
    group = NodeGroup.DATA
    description = (
        "Orders items by `fields`, the first field first. The sort is stable (equal items keep "
        "their order). Items where a field is missing or null come last in either order. "
        "Values of different types compare as numbers < strings < booleans < lists and "
        "objects (these by their JSON text). Items pass through unchanged."
    )
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "fields": {
                "type": "array",
                "minItems": 1,
                "description": "Sort keys, most significant first.",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {
                            "type": "string",
                            "description": "Dotted path of the field, e.g. `user.age`.",
                        },
                        "order": {
                            "type": "string",
                            "enum": ["asc", "desc"],
                            "description": "Ascending or descending.",
                            "default": "asc",
                        },
                    },
                    "required": ["field"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["fields"],
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        fields: list[dict[str, Any]] = Params(ctx, self).array("fields")
        items = list(ctx.items)
        # Stable sorts from the least significant key up give a multi-key sort with
        # a direction per key.
        for spec in reversed(fields):
            items = _sorted_by(items, spec["field"], spec.get("order", "asc") == "desc")
        return NodeResult.main(items)


def _sorted_by(items: list[Item], path: str, descending: bool) -> list[Item]:
    present: list[tuple[Any, Item]] = []
    absent: list[Item] = []
    for item in items:
        value = get_path(item.json, path)
        if value is MISSING or value is None:
            absent.append(item)
        else:
            present.append((sort_key(value), item))
    # `reverse=True` keeps equal elements in their original order, so it stays stable.
    present.sort(key=lambda pair: pair[0], reverse=descending)
    return [item for _, item in present] + absent


NODES: tuple[type[Node], ...] = (Sort,)
