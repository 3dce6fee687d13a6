"""The execute-workflow node: runs another workflow as a child execution."""

from __future__ import annotations

from typing import Any, ClassVar

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.sdk import (
    MAIN,
    ChildExecution,
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

__all__ = ["NODES", "ExecuteWorkflow"]


class ExecuteWorkflow(Node):
    type = "execute_workflow"
    display_name = "Execute Workflow"
    group = NodeGroup.FLOW
    description = (
        "Runs the workflow `workflow_id` (a workflow id of the same workspace; a file path "
        "relative to the calling file under `linkflow run`) as a child execution, linked both "
        "ways. Its input is `input`, or else the items' json. `mode: once` starts one child "
        "with all items; `each_item` one per item. With `wait` (default) the child's output "
        "items come out (a failed child fails this node): under `serve` the execution waits "
        "without holding a worker and resumes when every child ended, surviving restarts. "
        "Each child is started once, even when the node runs again after a crash (and a "
        "retry of the node does not start it again). Without `wait`, the input items pass on "
        "as soon as the child started."
    )
    lineage = Lineage.EXPLICIT
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "workflow_id": {"type": "string", "minLength": 1, "description": "The workflow."},
            "wait": {"type": "boolean", "default": True, "description": "Wait for the child."},
            "input": {"description": "The child's input; default: the items' json."},
            "mode": {
                "type": "string",
                "enum": ["once", "each_item"],
                "default": "once",
                "description": "One child for all items, or one per item.",
            },
        },
        "required": ["workflow_id"],
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        if params.text("mode") == "each_item":
            groups = [[i] for i in range(len(ctx.items))]
        else:
            groups = [list(range(len(ctx.items)))]
        produced: list[Item] = []
        children: list[str] = []
        for indexes in groups:
            first = indexes[0] if indexes else 0
            child = await self._start(ctx, params, indexes, first)
            children.append(child.execution_id)
            produced.extend(_output(ctx, child, indexes, params.flag("wait", first)))
        return NodeResult(outputs={MAIN: produced}, meta={"child_executions": children})

    async def _start(
        self, ctx: NodeContext, params: Params, indexes: list[int], first: int
    ) -> ChildExecution:
        reference = params.text("workflow_id", first)
        payload: Any = params.get("input", first)
        if payload is None:
            jsons = [ctx.items[i].json for i in indexes]
            payload = (
                jsons[0] if len(indexes) == 1 and params.text("mode") == "each_item" else jsons
            )
        child = await ctx.run_workflow(reference, payload, wait=params.flag("wait", first))
        if child.status in ("failed", "timeout", "cancelled"):
            message = (child.error or {}).get("message", child.status)
            raise NodeError(f"sub-workflow {reference!r} {child.status}: {message}")
        return child


def _output(ctx: NodeContext, child: ChildExecution, indexes: list[int], wait: bool) -> list[Item]:
    if not wait:
        return [ctx.items[i] for i in indexes]
    links = tuple(Pair(0, i) for i in indexes)
    return [Item(json=dict(json), paired=links) for json in child.output]


NODES: tuple[type[Node], ...] = (ExecuteWorkflow,)
