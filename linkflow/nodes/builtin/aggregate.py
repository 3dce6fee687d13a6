"""The aggregate node: turns all items into one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from linkflow.nodes.builtin._common import MISSING, Params, get_path
from linkflow.nodes.sdk import Item, JsonObject, Lineage, Node, NodeContext, NodeGroup, NodeResult

__all__ = ["NODES", "Aggregate"]


class Aggregate(Node):
    type = "aggregate"
    display_name = "Aggregate"
    group = NodeGroup.DATA
    description = (
        "Turns all items into one item, which descends from all of them. `all_items`: "
        "`{<destination>: [every item's json]}`. `fields`: one list per field, "
        "`{<rename_to or the field path as written>: [each item's value]}`; items without the "
        "field are skipped unless `include_missing`, which puts null in their place."
    )
    lineage = Lineage.MANY_TO_ONE
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "mode": {
                "type": "string",
                "enum": ["all_items", "fields"],
                "description": "Collect whole items, or the values of some fields.",
                "default": "all_items",
            },
            "destination": {
                "type": "string",
                "description": "all_items: the key of the list in the output item.",
                "default": "data",
            },
            "fields": {
                "type": "array",
                "description": "fields: the fields to collect, each into its own list.",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {
                            "type": "string",
                            "description": "Dotted path of the field, e.g. `user.email`.",
                        },
                        "rename_to": {
                            "type": "string",
                            "description": "Key of the list in the output (default: `field`).",
                        },
                    },
                    "required": ["field"],
                    "additionalProperties": False,
                },
                "default": [],
            },
            "include_missing": {
                "type": "boolean",
                "description": "fields: put null for items that lack a field instead of skipping.",
                "default": False,
            },
        },
        "required": [],
        "additionalProperties": False,
    }

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        fields = parameters.get("fields")
        if parameters.get("mode") == "fields" and isinstance(fields, list) and not fields:
            return ["fields must name at least one field when mode is fields"]
        return []

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        if params.text("mode") == "fields":
            json = _collect_fields(
                ctx.items, params.array("fields"), params.flag("include_missing")
            )
        else:
            json = {params.text("destination"): [item.json for item in ctx.items]}
        # paired stays None: the node's MANY_TO_ONE rule pairs the item with every input.
        return NodeResult.main([Item(json=json)])


def _collect_fields(
    items: Sequence[Item], fields: list[dict[str, Any]], include_missing: bool
) -> JsonObject:
    json: JsonObject = {}
    for spec in fields:
        values = []
        for item in items:
            value = get_path(item.json, spec["field"])
            if value is MISSING:
                if not include_missing:
                    continue
                value = None
            values.append(value)
        json[spec.get("rename_to") or spec["field"]] = values
    return json


NODES: tuple[type[Node], ...] = (Aggregate,)
