"""Node types that exist only for engine tests: each is a real node, registered the
way a custom node would be."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, ClassVar

from linkflow.nodes.registry import NodeRegistry, default_registry
from linkflow.nodes.sdk import Item, Node, NodeContext, NodeError, NodeGroup, NodeResult, map_items


class Calls:
    """Counts node invocations per (node id, run index) across executor instances."""

    counter: ClassVar[Counter[tuple[str, int]]] = Counter()
    failures_left: ClassVar[dict[str, int]] = {}

    @classmethod
    def reset(cls) -> None:
        cls.counter.clear()
        cls.failures_left.clear()


class CountNode(Node):
    """Passes items through and counts its invocations."""

    type = "test_count"
    display_name = "Count"
    group = NodeGroup.DATA
    description = "Counts invocations."
    parameters_schema: ClassVar[dict[str, Any]] = {
        "type": "object", "properties": {"tag": {"type": "string"}},
    }  # fmt: skip

    async def run(self, ctx: NodeContext) -> NodeResult:
        Calls.counter[(ctx.node_id, ctx.run_index)] += 1
        tag = ctx.param("tag")
        return NodeResult.main(
            [
                item.derive({**item.json, ctx.node_id: tag or True}, i)
                for i, item in enumerate(ctx.items)
            ]
        )


class FlakyNode(Node):
    """Fails with a retryable error while `Calls.failures_left[node id]` is positive."""

    type = "test_flaky"
    display_name = "Flaky"
    group = NodeGroup.ACTION
    description = "Fails a set number of times."
    parameters_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"retryable": {"type": "boolean"}, "retry_after_s": {"type": "number"}},
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        Calls.counter[(ctx.node_id, ctx.run_index)] += 1
        left = Calls.failures_left.get(ctx.node_id, 0)
        if left > 0:
            Calls.failures_left[ctx.node_id] = left - 1
            raise NodeError(
                f"attempt {ctx.attempt} failed",
                retryable=ctx.param("retryable", default=True),
                retry_after_s=ctx.param("retry_after_s"),
            )
        return NodeResult.main([item.derive({**item.json, "attempt": ctx.attempt}, i)
                                for i, item in enumerate(ctx.items)])  # fmt: skip


class HangNode(Node):
    """Never finishes on its own: for timeouts and cancellation."""

    type = "test_hang"
    display_name = "Hang"
    group = NodeGroup.ACTION
    description = "Waits forever."

    async def run(self, ctx: NodeContext) -> NodeResult:
        await asyncio.Event().wait()
        return NodeResult.main([])


class PickyNode(Node):
    """Fails the items whose `ok` is false, item by item."""

    type = "test_picky"
    display_name = "Picky"
    group = NodeGroup.DATA
    description = "Rejects items with ok=false."

    async def run(self, ctx: NodeContext) -> NodeResult:
        def check(item: Item, index: int) -> Item:
            if not item.json.get("ok", True):
                raise NodeError(f"item {index} is not ok")
            return item

        return map_items(ctx, check)


class CrashNode(Node):
    """Raises an exception the node did not anticipate."""

    type = "test_crash"
    display_name = "Crash"
    group = NodeGroup.ACTION
    description = "Raises ZeroDivisionError."

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult.main([Item({"x": 1 / len([])})])


def registry() -> NodeRegistry:
    reg = default_registry(plugins=False)
    for node in (CountNode, FlakyNode, HangNode, PickyNode, CrashNode):
        reg.register(node)
    return reg


class BigNode(Node):
    """Emits `count` items of `size` characters each: large outputs for the blob store."""

    type = "test_big"
    display_name = "Big"
    group = NodeGroup.DATA
    description = "Produces large items."
    parameters_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"count": {"type": "integer"}, "size": {"type": "integer"}},
    }

    async def run(self, ctx: NodeContext) -> NodeResult:
        Calls.counter[(ctx.node_id, ctx.run_index)] += 1
        count, size = ctx.param("count"), ctx.param("size")
        return NodeResult.main([Item({"i": i, "blob": "x" * size}) for i in range(count)])


def registry_with_big() -> NodeRegistry:
    reg = registry()
    reg.register(BigNode)
    return reg


class Gate:
    """Holds GateNode runs until the test opens it."""

    opened: ClassVar[asyncio.Event | None] = None
    reached: ClassVar[asyncio.Event | None] = None

    @classmethod
    def reset(cls) -> None:
        cls.opened = asyncio.Event()
        cls.reached = asyncio.Event()


class GateNode(Node):
    """Passes items through once `Gate.opened` is set; signals `Gate.reached` on arrival."""

    type = "test_gate"
    display_name = "Gate"
    group = NodeGroup.FLOW
    description = "Waits for the test."

    async def run(self, ctx: NodeContext) -> NodeResult:
        Calls.counter[(ctx.node_id, ctx.run_index)] += 1
        assert Gate.opened is not None
        assert Gate.reached is not None
        Gate.reached.set()
        await Gate.opened.wait()
        return NodeResult.main(ctx.items)


def registry_with_gate() -> NodeRegistry:
    reg = registry()
    reg.register(GateNode)
    return reg
