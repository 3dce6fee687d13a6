"""The no-op node passes items through."""

from __future__ import annotations

from tests.unit.nodes._support import NODE, START, run_node


class TestNoOp:
    async def test_passes_items_through_unchanged(self) -> None:
        """Output equals input, in order."""
        items = [{"a": 1}, {"b": [2]}]
        result = await run_node("noop", {}, items)
        assert result.output_of(NODE) == items

    async def test_items_descend_from_themselves(self) -> None:
        """Item i traces to input item i."""
        result = await run_node("noop", {}, [{"a": 1}, {"a": 2}])
        assert result.item_lineage(NODE) == [[(START, 0, 0)], [(START, 0, 1)]]
