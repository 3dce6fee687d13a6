"""The remove-duplicates node keeps the first item of each distinct value."""

from __future__ import annotations

from tests.unit.nodes._support import NODE, START, run_node


class TestRemoveDuplicates:
    async def test_whole_items_compare_regardless_of_key_order(self) -> None:
        """Without fields, items equal as JSON objects are duplicates."""
        items = [{"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 1, "b": 3}]
        result = await run_node("remove_duplicates", {}, items)
        assert result.output_of(NODE) == [{"a": 1, "b": 2}, {"a": 1, "b": 3}]

    async def test_fields_compare_only_those_values_and_keep_the_first(self) -> None:
        """The first item of each email is kept."""
        items = [
            {"email": "a@x", "n": 1}, {"email": "b@x", "n": 2}, {"email": "a@x", "n": 3},
        ]  # fmt: skip
        result = await run_node("remove_duplicates", {"fields": ["email"]}, items)
        assert result.output_of(NODE) == [{"email": "a@x", "n": 1}, {"email": "b@x", "n": 2}]

    async def test_several_fields_and_dotted_paths_form_the_key_together(self) -> None:
        """Items are duplicates only when every field matches."""
        items = [{"u": {"id": 1}, "t": "a"}, {"u": {"id": 1}, "t": "b"}, {"u": {"id": 1}, "t": "a"}]
        result = await run_node("remove_duplicates", {"fields": ["u.id", "t"]}, items)
        assert result.output_of(NODE) == items[:2]

    async def test_a_missing_field_differs_from_null_and_types_differ(self) -> None:
        """Missing, null, 1 and "1" are four different values."""
        items = [{}, {"k": None}, {"k": 1}, {"k": "1"}, {}, {"k": None}]
        result = await run_node("remove_duplicates", {"fields": ["k"]}, items)
        assert result.output_of(NODE) == items[:4]

    async def test_kept_items_keep_their_lineage(self) -> None:
        """Kept items trace to their own source."""
        result = await run_node("remove_duplicates", {}, [{"a": 1}, {"a": 1}, {"a": 2}])
        assert result.item_lineage(NODE) == [[(START, 0, 0)], [(START, 0, 2)]]
