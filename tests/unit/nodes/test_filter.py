"""The filter node keeps the items whose condition holds."""

from __future__ import annotations

from tests.unit.nodes._support import (
    NODE,
    START,
    document,
    edge,
    node,
    node_problems,
    run,
    run_node,
)


class TestFilter:
    async def test_keeps_items_whose_condition_is_true(self) -> None:
        """Per-item conditions decide; the order is kept."""
        items = [{"n": 1}, {"n": 5}, {"n": 3}, {"n": 8}]
        result = await run_node("filter", {"condition": "{{ json.n > 2 }}"}, items)
        assert result.output_of(NODE) == [{"n": 5}, {"n": 3}, {"n": 8}]

    async def test_uses_the_if_nodes_truthiness(self) -> None:
        """Falsy values and words such as "false" drop the item."""
        items = [{"ok": "yes"}, {"ok": "false"}, {"ok": 0}, {"ok": [1]}, {}]
        result = await run_node("filter", {"condition": "{{ json.ok }}"}, items)
        assert result.output_of(NODE) == [{"ok": "yes"}, {"ok": [1]}]

    async def test_kept_items_descend_from_themselves(self) -> None:
        """Kept items are the input items: lineage points at their source index."""
        items = [{"n": 1}, {"n": 5}, {"n": 3}]
        result = await run_node("filter", {"condition": "{{ json.n != 5 }}"}, items)
        assert result.item_lineage(NODE) == [[(START, 0, 0)], [(START, 0, 2)]]

    async def test_when_nothing_passes_the_next_node_is_skipped(self) -> None:
        """An empty result delivers nothing downstream."""
        doc = document(
            [
                node(START, "manual"),
                node(NODE, "filter", {"condition": False}),
                node("after", "noop"),
            ],
            [edge(START, NODE), edge(NODE, "after")],
        )
        result = await run(doc, [{"n": 1}])
        assert result.skipped("after")

    async def test_a_failing_condition_goes_to_error_with_on_error_output(self) -> None:
        """Items whose condition fails are routed to `error`."""
        result = await run_node(
            "filter", {"condition": "{{ 1 // json.n }}"}, [{"n": 1}, {"n": 0}], on_error="output"
        )
        assert result.output_of(NODE) == [{"n": 1}]
        assert [item["n"] for item in result.output_of(NODE, "error")] == [0]

    def test_the_condition_is_required(self) -> None:
        """A filter without a condition is invalid."""
        assert node_problems("filter", {}) != []
