"""The set node: sets fields on each item."""

from __future__ import annotations

from typing import Any, ClassVar

from linkflow.nodes.builtin._common import Params, set_path
from linkflow.nodes.sdk import Item, JsonObject, Node, NodeContext, NodeGroup, NodeResult, map_items

__all__ = ["NODES", "Set"]


class Set(Node):
    type = "set"
    display_name = "Set"
    group = NodeGroup.ACTION
    description = (
        "Sets fields on each item; values may be expressions, evaluated per item. A dotted "
        'name makes nested objects (`"user.name"` sets `{"user": {"name": ...}}`), replacing '
        "a value on the way that is not an object; turn `dot_notation` off to use names as "
        "they are. Starts from a copy of the item (input items are never changed), or from an "
        "empty object with `keep_only_set`."
    )
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "fields": {
                "type": "object",
                "additionalProperties": True,
                "description": "Field name → value or expression, set in order.",
                "default": {},
            },
            "keep_only_set": {
                "type": "boolean",
                "description": "Output only the fields set here, dropping the item's own.",
                "default": False,
            },
            "dot_notation": {
                "type": "boolean",
                "description": "Read dots in field names as nesting (`a.b`); off: literal names.",
                "default": True,
            },
        },
        "required": [],
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        keep_only_set = params.flag("keep_only_set")
        dot_notation = params.flag("dot_notation")

        def assign(item: Item, index: int) -> Item:
            json: JsonObject = {} if keep_only_set else dict(item.json)
            for name, value in params.mapping("fields", index).items():
                # Items are never mutated in place (set_path copies on write),
                # so a literal list or object may be shared between items.
                _assign(json, name, value, dot_notation)
            return item.derive(json, index)

        return map_items(ctx, assign)


def _assign(json: JsonObject, name: str, value: Any, dot_notation: bool) -> None:
    if dot_notation:
        set_path(json, name, value)
    else:
        json[name] = value


NODES: tuple[type[Node], ...] = (Set,)
