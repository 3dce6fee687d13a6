"""The limit node keeps the first or last N items."""

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

ITEMS = [{"n": n} for n in range(5)]


class TestLimit:
    async def test_keeps_the_first_items_by_default(self) -> None:
        """`keep` defaults to first."""
        result = await run_node("limit", {"max_items": 2}, ITEMS)
        assert result.output_of(NODE) == [{"n": 0}, {"n": 1}]

    async def test_keeps_one_item_by_default(self) -> None:
        """`max_items` defaults to 1, as in n8n."""
        result = await run_node("limit", {}, ITEMS)
        assert result.output_of(NODE) == [{"n": 0}]

    async def test_keeps_the_last_items_in_their_order(self) -> None:
        """`keep: last` keeps the tail, not reversed."""
        result = await run_node("limit", {"max_items": 2, "keep": "last"}, ITEMS)
        assert result.output_of(NODE) == [{"n": 3}, {"n": 4}]
        assert result.item_lineage(NODE) == [[(START, 0, 3)], [(START, 0, 4)]]

    async def test_a_limit_above_the_count_keeps_everything(self) -> None:
        """Fewer items than the limit pass through."""
        result = await run_node("limit", {"max_items": 50}, ITEMS)
        assert result.output_of(NODE) == ITEMS

    async def test_a_limit_of_zero_delivers_nothing(self) -> None:
        """Zero keeps no item, so the next node is skipped."""
        doc = document(
            [node(START, "manual"), node(NODE, "limit", {"max_items": 0}), node("after", "noop")],
            [edge(START, NODE), edge(NODE, "after")],
        )
        result = await run(doc, ITEMS)
        assert result.output_of(NODE) == []
        assert result.skipped("after")

    async def test_the_limit_may_be_an_expression(self) -> None:
        """An expression giving a number works; one giving text fails, naming the parameter."""
        good = await run_node("limit", {"max_items": "{{ 1 + 2 }}"}, ITEMS)
        assert len(good.output_of(NODE)) == 3
        bad = await run_node("limit", {"max_items": "{{ 'many' }}"}, ITEMS)
        assert bad.status == "failed"
        assert bad.error is not None
        assert "max_items" in bad.error["message"]

    def test_a_negative_limit_is_refused(self) -> None:
        """max_items is at least 0."""
        assert node_problems("limit", {"max_items": -1}) != []
