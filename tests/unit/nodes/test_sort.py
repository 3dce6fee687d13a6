"""The sort node orders items by fields, stably, with missing values last."""

from __future__ import annotations

from typing import Any

from tests.unit.nodes._support import NODE, START, node_problems, run_node


async def _sorted(
    fields: list[dict[str, Any]], items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    result = await run_node("sort", {"fields": fields}, items)
    assert result.status == "completed", result.error
    return result.output_of(NODE)


class TestSort:
    async def test_sorts_ascending_by_default(self) -> None:
        """Without `order`, smaller values come first."""
        items = [{"n": 3}, {"n": 1}, {"n": 2}]
        assert await _sorted([{"field": "n"}], items) == [{"n": 1}, {"n": 2}, {"n": 3}]

    async def test_sorts_descending(self) -> None:
        """`order: desc` reverses the order."""
        items = [{"n": 3}, {"n": 1}, {"n": 2}]
        assert await _sorted([{"field": "n", "order": "desc"}], items) == [
            {"n": 3},
            {"n": 2},
            {"n": 1},
        ]

    async def test_later_fields_break_ties_each_in_its_own_direction(self) -> None:
        """Multi-key: the first field decides, the second orders equal firsts."""
        items = [{"g": "b", "n": 1}, {"g": "a", "n": 1}, {"g": "b", "n": 2}, {"g": "a", "n": 3}]
        fields = [{"field": "g"}, {"field": "n", "order": "desc"}]
        assert await _sorted(fields, items) == [
            {"g": "a", "n": 3}, {"g": "a", "n": 1}, {"g": "b", "n": 2}, {"g": "b", "n": 1},
        ]  # fmt: skip

    async def test_equal_items_keep_their_order_in_both_directions(self) -> None:
        """The sort is stable, also descending."""
        items = [{"k": 1, "id": "a"}, {"k": 2, "id": "b"}, {"k": 1, "id": "c"}, {"k": 2, "id": "d"}]
        ascending = await _sorted([{"field": "k"}], items)
        descending = await _sorted([{"field": "k", "order": "desc"}], items)
        assert [i["id"] for i in ascending] == ["a", "c", "b", "d"]
        assert [i["id"] for i in descending] == ["b", "d", "a", "c"]

    async def test_missing_and_null_values_sort_last_in_either_order(self) -> None:
        """Items without the field, or with null, come after all others."""
        items = [
            {"id": "none", "n": None},
            {"id": "two", "n": 2},
            {"id": "gone"},
            {"id": "one", "n": 1},
        ]
        ascending = await _sorted([{"field": "n"}], items)
        descending = await _sorted([{"field": "n", "order": "desc"}], items)
        assert [i["id"] for i in ascending] == ["one", "two", "none", "gone"]
        assert [i["id"] for i in descending] == ["two", "one", "none", "gone"]

    async def test_mixed_types_order_numbers_strings_booleans_then_structures(self) -> None:
        """numbers < strings < booleans < lists and objects."""
        values: list[Any] = [{"a": 1}, True, "b", 2.5, [1], "a", False, -1]
        items = [{"v": v} for v in values]
        ordered = [i["v"] for i in await _sorted([{"field": "v"}], items)]
        assert ordered == [-1, 2.5, "a", "b", False, True, [1], {"a": 1}]

    async def test_sorts_by_a_dotted_path(self) -> None:
        """Nested fields are reached with dots."""
        items = [{"u": {"age": 40}}, {"u": {"age": 30}}]
        assert await _sorted([{"field": "u.age"}], items) == [
            {"u": {"age": 30}},
            {"u": {"age": 40}},
        ]

    async def test_the_sort_keys_may_come_from_an_expression(self) -> None:
        """A whole list parameter may be one expression, e.g. from workspace variables."""
        items = [{"n": 2}, {"n": 1}]
        result = await run_node(
            "sort", {"fields": "{{ [{'field': 'n', 'order': 'desc'}] }}"}, items
        )
        assert result.output_of(NODE) == [{"n": 2}, {"n": 1}]

    async def test_sort_keys_from_an_expression_are_checked_when_evaluated(self) -> None:
        """An evaluated value that breaks the schema fails, naming the parameter and the spot."""
        result = await run_node("sort", {"fields": "{{ [{'order': 'desc'}] }}"}, [{"n": 1}])
        assert result.error == {
            "message": "parameter 'fields[0]': 'field' is a required property",
            "node_id": NODE,
        }

    async def test_sorted_items_keep_their_lineage(self) -> None:
        """Each item still descends from its source item."""
        result = await run_node("sort", {"fields": [{"field": "n"}]}, [{"n": 2}, {"n": 1}])
        assert result.item_lineage(NODE) == [[(START, 0, 1)], [(START, 0, 0)]]

    def test_at_least_one_field_is_required(self) -> None:
        """An empty `fields` list is refused."""
        assert node_problems("sort", {"fields": []}) != []

    def test_order_is_asc_or_desc(self) -> None:
        """Other orders are refused."""
        assert node_problems("sort", {"fields": [{"field": "n", "order": "up"}]}) != []
