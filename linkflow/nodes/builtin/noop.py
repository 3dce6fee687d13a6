"""The no-op node: passes its items through."""

from __future__ import annotations

from typing import ClassVar

from linkflow.nodes.sdk import JsonObject, Node, NodeContext, NodeGroup, NodeResult

__all__ = ["NODES", "NoOp"]


class NoOp(Node):
    type = "noop"
    display_name = "No Operation"
    group = NodeGroup.FLOW
    description = "Passes its items through unchanged; useful as a junction or a placeholder."
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult.main(list(ctx.items))


NODES: tuple[type[Node], ...] = (NoOp,)
