"""The set node sets fields on each item."""

from __future__ import annotations

from tests.unit.nodes._support import NODE, START, node_problems, run_node


class TestSet:
    async def test_sets_literal_and_per_item_expression_values(self) -> None:
        """Expressions are evaluated for each item; native types are kept."""
        fields = {"greeting": "Hi {{ json.name }}", "double": "{{ json.n * 2 }}", "fixed": [1, 2]}
        result = await run_node(
            "set", {"fields": fields}, [{"name": "Ada", "n": 1}, {"name": "Bob", "n": 2}]
        )
        assert result.output_of(NODE) == [
            {"name": "Ada", "n": 1, "greeting": "Hi Ada", "double": 2, "fixed": [1, 2]},
            {"name": "Bob", "n": 2, "greeting": "Hi Bob", "double": 4, "fixed": [1, 2]},
        ]

    async def test_dotted_names_make_nested_objects(self) -> None:
        """`user.name` sets a field inside `user`, keeping its other fields."""
        result = await run_node(
            "set", {"fields": {"user.name": "Ada", "a.b.c": 1}}, {"user": {"id": 7}}
        )
        assert result.output_of(NODE) == [{"user": {"id": 7, "name": "Ada"}, "a": {"b": {"c": 1}}}]

    async def test_a_dotted_name_replaces_a_value_that_is_not_an_object(self) -> None:
        """Like lodash's set: a scalar on the way becomes an object."""
        result = await run_node("set", {"fields": {"user.name": "Ada"}}, {"user": "ada"})
        assert result.output_of(NODE) == [{"user": {"name": "Ada"}}]

    async def test_dot_notation_off_keeps_dots_in_names(self) -> None:
        """With `dot_notation: false` a name is a key as written."""
        result = await run_node("set", {"fields": {"a.b": 1}, "dot_notation": False}, {})
        assert result.output_of(NODE) == [{"a.b": 1}]

    async def test_keep_only_set_drops_the_items_own_fields(self) -> None:
        """The output holds only the fields set."""
        result = await run_node(
            "set", {"fields": {"x": "{{ json.a }}"}, "keep_only_set": True}, {"a": 1, "b": 2}
        )
        assert result.output_of(NODE) == [{"x": 1}]

    async def test_input_items_are_never_changed(self) -> None:
        """A nested change works on a copy: the trigger's item is as it was."""
        result = await run_node("set", {"fields": {"user.name": "Ada"}}, {"user": {"id": 7}})
        assert result.output_of(START) == [{"user": {"id": 7}}]

    async def test_items_descend_one_to_one(self) -> None:
        """Item i traces to input item i."""
        result = await run_node("set", {"fields": {"x": 1}}, [{}, {}])
        assert result.item_lineage(NODE) == [[(START, 0, 0)], [(START, 0, 1)]]

    async def test_a_failing_expression_sends_the_item_to_error_with_on_error_output(self) -> None:
        """The other items are set."""
        result = await run_node(
            "set", {"fields": {"x": "{{ 1 // json.n }}"}}, [{"n": 1}, {"n": 0}], on_error="output"
        )
        assert result.output_of(NODE) == [{"n": 1, "x": 1}]
        assert [item["n"] for item in result.output_of(NODE, "error")] == [0]

    async def test_a_failing_expression_fails_the_execution_naming_the_parameter(self) -> None:
        """The message names the `fields` parameter."""
        result = await run_node("set", {"fields": {"x": "{{ 1 // json.n }}"}}, [{"n": 0}])
        assert result.status == "failed"
        assert result.error is not None
        assert "fields" in result.error["message"]

    def test_fields_must_be_an_object(self) -> None:
        """A list of fields is refused."""
        assert node_problems("set", {"fields": ["x"]}) != []
