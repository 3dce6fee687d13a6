"""The split-out node makes one item per element of a list field."""

from __future__ import annotations

from typing import Any

from tests.unit.nodes._support import NODE, START, node_problems, run_node

ORDER = {
    "order": {"id": 7, "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]},
    "customer": "Ada",
}


async def _split(parameters: dict[str, Any], items: Any) -> Any:
    return await run_node("split_out", parameters, items)


class TestSplitOut:
    async def test_object_elements_become_the_items(self) -> None:
        """With `include: none` an object element is the new item."""
        result = await _split({"field": "order.lines"}, ORDER)
        assert result.output_of(NODE) == [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]

    async def test_other_elements_go_under_the_last_segment_of_the_field(self) -> None:
        """A scalar element becomes `{<last segment>: element}` by default."""
        result = await _split({"field": "data.tags"}, {"data": {"tags": ["x", "y"]}})
        assert result.output_of(NODE) == [{"tags": "x"}, {"tags": "y"}]

    async def test_destination_names_where_the_element_goes(self) -> None:
        """`destination` (a dotted path) replaces the default name."""
        result = await _split({"field": "tags", "destination": "tag.name"}, {"tags": ["x"]})
        assert result.output_of(NODE) == [{"tag": {"name": "x"}}]

    async def test_a_named_destination_wraps_object_elements_too(self) -> None:
        """With `destination` set, an object element goes under that name."""
        result = await _split({"field": "order.lines", "destination": "line"}, ORDER)
        assert result.output_of(NODE) == [
            {"line": {"sku": "a", "qty": 1}},
            {"line": {"sku": "b", "qty": 2}},
        ]

    async def test_other_fields_keeps_the_rest_of_the_item(self) -> None:
        """With `include: other_fields` the item minus the list, plus the element."""
        parameters = {"field": "order.lines", "destination": "line", "include": "other_fields"}
        result = await _split(parameters, ORDER)
        assert result.output_of(NODE) == [
            {"order": {"id": 7}, "customer": "Ada", "line": {"sku": "a", "qty": 1}},
            {"order": {"id": 7}, "customer": "Ada", "line": {"sku": "b", "qty": 2}},
        ]

    async def test_the_input_item_is_not_changed(self) -> None:
        """Removing the list for other_fields works on a copy."""
        result = await _split({"field": "order.lines", "include": "other_fields"}, ORDER)
        assert result.output_of(START) == [ORDER]

    async def test_an_empty_list_yields_no_items(self) -> None:
        """Nothing to split, nothing out."""
        result = await _split({"field": "tags"}, [{"tags": []}, {"tags": [1]}])
        assert result.output_of(NODE) == [{"tags": 1}]

    async def test_each_item_descends_from_the_item_it_was_split_from(self) -> None:
        """One-to-many lineage: every element traces to its source item."""
        result = await _split({"field": "tags"}, [{"tags": [1, 2]}, {"tags": [3]}])
        assert result.item_lineage(NODE) == [[(START, 0, 0)], [(START, 0, 0)], [(START, 0, 1)]]

    async def test_a_missing_field_fails_naming_the_field_and_item(self) -> None:
        """The error message says which field is missing in which item."""
        result = await _split({"field": "tags"}, [{"tags": [1]}, {"other": 1}])
        assert result.status == "failed"
        assert result.error == {"message": "field 'tags' is missing in item 1", "node_id": NODE}

    async def test_a_field_that_is_not_a_list_fails(self) -> None:
        """A string is not split into characters."""
        result = await _split({"field": "tags"}, [{"tags": "a,b"}])
        assert result.error is not None
        assert result.error["message"] == "field 'tags' in item 0 is a string, not a list"

    async def test_with_on_error_output_a_bad_item_goes_to_error(self) -> None:
        """The other items are still split."""
        result = await run_node(
            "split_out", {"field": "tags"}, [{"tags": [1]}, {"tags": None}], on_error="output"
        )
        assert result.output_of(NODE) == [{"tags": 1}]
        assert result.output_of(NODE, "error") == [
            {"tags": None, "error": {"message": "field 'tags' in item 1 is null, not a list"}}
        ]

    def test_the_field_is_required(self) -> None:
        """A split without a field is invalid."""
        assert node_problems("split_out", {}) != []
