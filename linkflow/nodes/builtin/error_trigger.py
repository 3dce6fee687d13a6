"""The error trigger: starts a workflow's error workflow."""

from __future__ import annotations

from typing import ClassVar

from linkflow.nodes.builtin._common import items_from_input
from linkflow.nodes.sdk import JsonObject, Node, NodeContext, NodeGroup, NodeResult

__all__ = ["NODES", "ErrorTrigger"]


class ErrorTrigger(Node):
    type = "error"
    display_name = "Error Trigger"
    group = NodeGroup.TRIGGER
    description = (
        "Starts a workflow when another workflow that names this one as its error workflow "
        "fails. Emits one item describing the failure. Run by hand, its input is used as it is "
        "(an object is the item; no input gives one empty item)."
    )
    inputs = 0
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }
    emits = (
        "One item `{execution: {id, ...}, workflow: {id, name, ...}, "
        "error: {message, node_id}}` describing the failed execution."
    )

    async def run(self, ctx: NodeContext) -> NodeResult:
        # The failed execution's summary is one object; a list is not split up here.
        value = ctx.trigger_input
        items = items_from_input([value] if isinstance(value, list) else value)
        return NodeResult.main(items)


NODES: tuple[type[Node], ...] = (ErrorTrigger,)
