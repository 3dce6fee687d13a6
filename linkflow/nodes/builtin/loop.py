"""The loop node (split in batches): feeds its items to a loop body batch by batch.

The engine re-runs this node each time the body hands items back along a back
edge, with `ctx.state` holding what the previous run returned. The state is a
JSON object, kept in the execution history:

- `first_run`: the run index of the run that received the items;
- `pending`: `[{index, json}]`, the items not yet sent, with their index on that run;
- `returned`: `[{run, index, json}]`, what the body handed back so far.

Binary data is not kept in the state: items of later batches and of `done` carry json only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.sdk import (
    Item,
    JsonObject,
    Lineage,
    Node,
    NodeContext,
    NodeGroup,
    NodeResult,
    Pair,
)

__all__ = ["NODES", "Loop"]

LOOP_OUTPUT = "loop"
DONE_OUTPUT = "done"


class Loop(Node):
    type = "loop"
    display_name = "Loop Over Items"
    group = NodeGroup.FLOW
    description = (
        "Splits its items into batches of `batch_size`. Sends the first batch to `loop`; each "
        "time the loop body connects back to this node and hands items back, sends the next "
        "batch; after the last batch comes back, sends everything the body handed back to "
        "`done` and starts afresh on its next activation. Later batches descend from the items "
        "the node first received, `done` items from the items handed back."
    )
    outputs = (LOOP_OUTPUT, DONE_OUTPUT)
    lineage = Lineage.EXPLICIT
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "batch_size": {
                "type": "integer",
                "minimum": 1,
                "description": "Items per batch.",
                "default": 10,
            },
        },
        "required": [],
        "additionalProperties": False,
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        if ctx.state is None:
            return self._start(ctx)
        return _resume(ctx, ctx.state)

    def _start(self, ctx: NodeContext) -> NodeResult:
        size = Params(ctx, self).integer("batch_size")
        items = ctx.items
        batch = [item.derive(item.json, index) for index, item in enumerate(items[:size])]
        state: JsonObject = {
            "first_run": ctx.run_index,
            "batch_size": size,
            "pending": [
                {"index": index, "json": item.json}
                for index, item in enumerate(items) if index >= size
            ],
            "returned": [],
        }  # fmt: skip
        return NodeResult(outputs={LOOP_OUTPUT: batch}, state=state)


def _resume(ctx: NodeContext, state: JsonObject) -> NodeResult:
    returned: list[Any] = [
        *state["returned"],
        *({"run": ctx.run_index, "index": index, "json": item.json}
          for index, item in enumerate(ctx.items)),
    ]  # fmt: skip
    pending: Sequence[Any] = state["pending"]
    if not pending:
        done = [
            Item(json=entry["json"], paired=(Pair(0, entry["index"], run=entry["run"]),))
            for entry in returned
        ]
        # No state: the next activation (e.g. from an outer loop) starts afresh.
        return NodeResult(outputs={DONE_OUTPUT: done}, state=None)
    size: int = state["batch_size"]
    first_run: int = state["first_run"]
    batch = [
        Item(json=entry["json"], paired=(Pair(0, entry["index"], run=first_run),))
        for entry in pending[:size]
    ]
    next_state = {**state, "pending": list(pending[size:]), "returned": returned}
    return NodeResult(outputs={LOOP_OUTPUT: batch}, state=next_state)


NODES: tuple[type[Node], ...] = (Loop,)
