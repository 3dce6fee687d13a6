"""The remove-duplicates node: keeps the first item of each distinct value."""

from __future__ import annotations

from typing import Any, ClassVar

from linkflow.nodes.builtin._common import MISSING, Params, canonical_json, get_path
from linkflow.nodes.sdk import Item, JsonObject, Node, NodeContext, NodeGroup, NodeResult

__all__ = ["NODES", "RemoveDuplicates"]


class RemoveDuplicates(Node):
    type = "remove_duplicates"
    display_name = "Remove Duplicates"
    group = NodeGroup.DATA
    description = (
        "Keeps the first item of each group of items that are equal on `fields` (or on their "
        "whole json when `fields` is empty) and drops the later ones. Values compare as JSON "
        '(object key order does not matter; 1 and "1" differ; a missing field differs from '
        "null). Kept items pass through unchanged."
    )
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "fields": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Dotted paths to compare on; empty compares whole items.",
                "default": [],
            },
        },
        "required": [],
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        fields: list[str] = Params(ctx, self).array("fields")
        seen: set[str] = set()
        kept: list[Item] = []
        for item in ctx.items:
            identity = _identity(item, fields)
            if identity not in seen:
                seen.add(identity)
                kept.append(item)
        return NodeResult.main(kept)


def _identity(item: Item, fields: list[str]) -> str:
    if not fields:
        return canonical_json(item.json)
    values: list[Any] = []
    for path in fields:
        value = get_path(item.json, path)
        # A one-element list for present values keeps missing apart from null.
        values.append([] if value is MISSING else [value])
    return canonical_json(values)


NODES: tuple[type[Node], ...] = (RemoveDuplicates,)
