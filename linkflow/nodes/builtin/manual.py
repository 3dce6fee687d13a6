"""The manual trigger: the execution's input becomes its items."""

from __future__ import annotations

from typing import ClassVar

from linkflow.nodes.builtin._common import items_from_input
from linkflow.nodes.sdk import JsonObject, Node, NodeContext, NodeGroup, NodeResult

__all__ = ["NODES", "ManualTrigger"]


class ManualTrigger(Node):
    type = "manual"
    display_name = "Manual Trigger"
    group = NodeGroup.TRIGGER
    description = (
        "Starts a workflow by hand, from the editor, the API or `linkflow run`. Its items are "
        "the execution's input: an object is one item, a list is one item per element (an "
        'element that is not an object becomes `{"value": element}`), no input is one empty '
        "item `{}`."
    )
    inputs = 0
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }
    emits = "The execution's input: one item per element of a list input, else one item."

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult.main(items_from_input(ctx.trigger_input))


NODES: tuple[type[Node], ...] = (ManualTrigger,)
