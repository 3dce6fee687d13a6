"""The manual trigger turns the execution's input into items."""

from __future__ import annotations

from tests.unit.nodes._support import NODE, START, document, node, run, run_node, run_trigger


class TestManual:
    async def test_an_object_input_is_one_item(self) -> None:
        """An object is the one item."""
        result = await run_trigger("manual", input_={"a": 1})
        assert result.status == "completed"
        assert result.output_of(NODE) == [{"a": 1}]

    async def test_a_list_input_is_one_item_per_element(self) -> None:
        """Each element of a list is an item, in order."""
        result = await run_trigger("manual", input_=[{"a": 1}, {"a": 2}, {"a": 3}])
        assert result.output_of(NODE) == [{"a": 1}, {"a": 2}, {"a": 3}]

    async def test_a_list_element_that_is_not_an_object_is_wrapped_as_value(self) -> None:
        """Scalars and lists inside the input list become `{"value": x}`."""
        result = await run_trigger("manual", input_=[1, "two", [3], None, {"b": 4}])
        assert result.output_of(NODE) == [
            {"value": 1}, {"value": "two"}, {"value": [3]}, {"value": None}, {"b": 4},
        ]  # fmt: skip

    async def test_a_scalar_input_is_one_wrapped_item(self) -> None:
        """A whole input that is a scalar becomes one `{"value": x}` item."""
        result = await run_trigger("manual", input_=42)
        assert result.output_of(NODE) == [{"value": 42}]

    async def test_no_input_is_one_empty_item(self) -> None:
        """None gives one empty item, so the nodes after it still run once."""
        result = await run_trigger("manual")
        assert result.output_of(NODE) == [{}]

    async def test_an_empty_list_input_gives_no_items_and_skips_what_follows(self) -> None:
        """An empty list is zero items: downstream nodes are skipped."""
        result = await run_node("noop", input_=[])
        assert result.output_of(START) == []
        assert result.skipped(NODE)

    async def test_trigger_items_descend_from_nothing(self) -> None:
        """Trigger items have no lineage of their own."""
        result = await run(document([node(NODE, "manual")], []), [{"a": 1}, {"a": 2}])
        assert result.item_lineage(NODE) == [[], []]
