"""The if node routes each item to `true` or `false` by its condition."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.nodes._support import NODE, START, document, edge, node, problems, run, run_node

FALSY = [
    None,
    False,
    0,
    0.0,
    "",
    [],
    {},
    "false",
    "False",
    " FALSE ",
    "0",
    "no",
    "off",
    "null",
    "None",
]
TRUTHY = [True, 1, -1, 0.5, "true", "yes", "text", "00", [0], {"a": None}]


class TestIf:
    async def test_items_go_to_true_or_false_by_their_own_condition(self) -> None:
        """The condition is evaluated per item."""
        items = [{"age": 20}, {"age": 12}, {"age": 18}]
        result = await run_node("if", {"condition": "{{ json.age >= 18 }}"}, items)
        assert result.output_of(NODE, "true") == [{"age": 20}, {"age": 18}]
        assert result.output_of(NODE, "false") == [{"age": 12}]

    @pytest.mark.parametrize("value", FALSY)
    async def test_json_falsy_values_and_false_words_are_false(self, value: Any) -> None:
        """null, false, 0, empty text/list/object and "false"/"0"/"no"/"off"/"null" are false."""
        result = await run_node("if", {"condition": "{{ json.v }}"}, [{"v": value}])
        assert result.output_of(NODE, "false") == [{"v": value}]

    @pytest.mark.parametrize("value", TRUTHY)
    async def test_other_values_are_true(self, value: Any) -> None:
        """Anything else, including "00" and a list holding 0, is true."""
        result = await run_node("if", {"condition": "{{ json.v }}"}, [{"v": value}])
        assert result.output_of(NODE, "true") == [{"v": value}]

    async def test_a_condition_rendered_into_text_is_judged_by_its_words(self) -> None:
        """`"{{ x }} "` renders Python's False as "False ", which is false."""
        result = await run_node("if", {"condition": "{{ json.v > 1 }} "}, [{"v": 0}, {"v": 2}])
        assert result.output_of(NODE, "false") == [{"v": 0}]
        assert result.output_of(NODE, "true") == [{"v": 2}]

    async def test_a_branch_that_receives_nothing_is_skipped(self) -> None:
        """Nodes after an output that delivered no items are skipped."""
        doc = document(
            [node(START, "manual"), node(NODE, "if", {"condition": True}),
             node("yes", "noop"), node("no", "noop")],
            [edge(START, NODE), edge(NODE, "yes", "true"), edge(NODE, "no", "false")],
        )  # fmt: skip
        result = await run(doc, [{"a": 1}])
        assert result.ran("yes")
        assert result.skipped("no")

    async def test_routed_items_keep_their_lineage(self) -> None:
        """Each routed item descends from the input item it is."""
        items = [{"v": 0}, {"v": 1}, {"v": 0}]
        result = await run_node("if", {"condition": "{{ json.v }}"}, items)
        assert result.item_lineage(NODE, "false") == [[(START, 0, 0)], [(START, 0, 2)]]
        assert result.item_lineage(NODE, "true") == [[(START, 0, 1)]]

    async def test_a_failing_condition_sends_the_item_to_error_with_on_error_output(self) -> None:
        """With `on_error: output` the failed item goes to `error`, the others on."""
        result = await run_node(
            "if", {"condition": "{{ 10 // json.n > 1 }}"}, [{"n": 2}, {"n": 0}], on_error="output"
        )
        assert result.output_of(NODE, "true") == [{"n": 2}]
        failed = result.output_of(NODE, "error")
        assert len(failed) == 1
        assert failed[0]["n"] == 0
        assert "message" in failed[0]["error"]

    async def test_a_failing_condition_fails_the_execution_naming_the_node(self) -> None:
        """By default an expression error stops the execution."""
        result = await run_node("if", {"condition": "{{ 10 // json.n > 1 }}"}, [{"n": 0}])
        assert result.status == "failed"
        assert result.error is not None
        assert result.error["node_id"] == NODE

    def test_the_condition_is_required(self) -> None:
        """An if without a condition is invalid."""
        doc = document([node(START, "manual"), node(NODE, "if", {})], [edge(START, NODE)])
        assert problems(doc) != []
