"""The aggregate node turns all items into one."""

from __future__ import annotations

from tests.unit.nodes._support import NODE, START, node_problems, run_node

ITEMS = [
    {"name": "Ada", "user": {"email": "ada@example.com"}},
    {"name": "Bob"},
    {"name": "Cy", "user": {"email": "cy@example.com"}},
]


class TestAggregate:
    async def test_all_items_collects_every_json_under_data(self) -> None:
        """The default mode and destination: `{"data": [...]}`."""
        result = await run_node("aggregate", {}, ITEMS)
        assert result.output_of(NODE) == [{"data": ITEMS}]

    async def test_all_items_uses_the_destination(self) -> None:
        """`destination` names the list's key."""
        result = await run_node("aggregate", {"destination": "people"}, ITEMS)
        assert result.output_of(NODE) == [{"people": ITEMS}]

    async def test_fields_collects_one_list_per_field_skipping_missing(self) -> None:
        """Items without the field add nothing to its list."""
        fields = [{"field": "name"}, {"field": "user.email", "rename_to": "emails"}]
        result = await run_node("aggregate", {"mode": "fields", "fields": fields}, ITEMS)
        assert result.output_of(NODE) == [
            {"name": ["Ada", "Bob", "Cy"], "emails": ["ada@example.com", "cy@example.com"]}
        ]

    async def test_fields_with_include_missing_puts_null_for_missing(self) -> None:
        """The lists line up with the items when missing values are kept."""
        parameters = {
            "mode": "fields",
            "fields": [{"field": "user.email"}],
            "include_missing": True,
        }
        result = await run_node("aggregate", parameters, ITEMS)
        assert result.output_of(NODE) == [
            {"user.email": ["ada@example.com", None, "cy@example.com"]}
        ]

    async def test_the_one_item_descends_from_every_input_item(self) -> None:
        """Many-to-one lineage: the item traces to all the items it aggregates."""
        result = await run_node("aggregate", {}, ITEMS)
        assert result.item_lineage(NODE) == [[(START, 0, 0), (START, 0, 1), (START, 0, 2)]]

    def test_fields_mode_needs_at_least_one_field(self) -> None:
        """An empty field list is refused."""
        assert node_problems("aggregate", {"mode": "fields", "fields": []}) == [
            "fields must name at least one field when mode is fields"
        ]

    def test_an_unknown_mode_is_refused(self) -> None:
        """Only all_items and fields exist."""
        assert node_problems("aggregate", {"mode": "sum"}) != []
