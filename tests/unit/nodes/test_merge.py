"""The merge node joins the items of its inputs."""

from __future__ import annotations

from typing import Any

from tests.unit.nodes._support import (
    NODE,
    START,
    document,
    edge,
    node,
    node_problems,
    problems,
    run,
)

LEFT = [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Bob"}, {"id": 3, "name": "Cy"}]
RIGHT = [{"id": 2, "city": "Oslo"}, {"id": 4, "city": "Rome"}, {"id": 1, "city": "Lima"}]


async def _merge(parameters: dict[str, Any], *lists: list[dict[str, Any]]) -> Any:
    """Run manual → one split_out per list (`in0`, `in1`, ...) → merge input k."""
    names = [f"in{k}" for k in range(len(lists))]
    nodes = [node(START, "manual")]
    nodes += [node(name, "split_out", {"field": name}) for name in names]
    nodes.append(node(NODE, "merge", parameters))
    edges = [edge(START, name) for name in names]
    edges += [edge(name, NODE, input_=k) for k, name in enumerate(names)]
    return await run(document(nodes, edges), dict(zip(names, lists, strict=True)))


class TestAppend:
    async def test_append_concatenates_the_inputs_in_input_order(self) -> None:
        """Input 0's items come first, then input 1's."""
        result = await _merge({"mode": "append"}, LEFT, RIGHT)
        assert result.output_of(NODE) == LEFT + RIGHT

    async def test_append_is_the_default_mode(self) -> None:
        """Without `mode` the inputs are appended."""
        result = await _merge({}, LEFT[:1], RIGHT[:1])
        assert result.output_of(NODE) == [LEFT[0], RIGHT[0]]

    async def test_append_traces_each_item_to_its_input(self) -> None:
        """Item lineage names the upstream node of each input."""
        result = await _merge({}, LEFT[:2], RIGHT[:1])
        assert result.item_lineage(NODE) == [[("in0", 0, 0)], [("in0", 0, 1)], [("in1", 0, 0)]]

    async def test_more_inputs_can_be_declared(self) -> None:
        """With `inputs: 3`, input 2 exists and is appended last."""
        result = await _merge({"inputs": 3}, [{"a": 1}], [{"b": 2}], [{"c": 3}])
        assert result.output_of(NODE) == [{"a": 1}, {"b": 2}, {"c": 3}]

    async def test_merge_runs_when_only_one_input_delivered(self) -> None:
        """A branch that delivers nothing does not block the merge."""
        doc = document(
            [node(START, "manual"), node("check", "if", {"condition": "{{ json.ok }}"}),
             node(NODE, "merge", {})],
            [edge(START, "check"), edge("check", NODE, "true", 0), edge("check", NODE, "false", 1)],
        )  # fmt: skip
        result = await run(doc, [{"ok": True}, {"ok": True}])
        assert result.output_of(NODE) == [{"ok": True}, {"ok": True}]


class TestCombineByKey:
    async def test_inner_join_drops_unmatched_items(self) -> None:
        """Only items whose key matches on both sides are output, merged, in input 0's order."""
        result = await _merge({"mode": "combine_by_key", "key": "id"}, LEFT, RIGHT)
        assert result.output_of(NODE) == [
            {"id": 1, "name": "Ada", "city": "Lima"},
            {"id": 2, "name": "Bob", "city": "Oslo"},
        ]

    async def test_left_join_keeps_input_0s_unmatched_items(self) -> None:
        """Unmatched items of input 0 are kept as they are."""
        result = await _merge({"mode": "combine_by_key", "key": "id", "join": "left"}, LEFT, RIGHT)
        assert [item["id"] for item in result.output_of(NODE)] == [1, 2, 3]
        assert result.output_of(NODE)[2] == {"id": 3, "name": "Cy"}

    async def test_outer_join_keeps_every_unmatched_item(self) -> None:
        """Input 1's unmatched items follow input 0's rows."""
        result = await _merge({"mode": "combine_by_key", "key": "id", "join": "outer"}, LEFT, RIGHT)
        assert [item["id"] for item in result.output_of(NODE)] == [1, 2, 3, 4]
        assert result.output_of(NODE)[3] == {"id": 4, "city": "Rome"}

    async def test_combined_items_descend_from_both_sources(self) -> None:
        """A merged item pairs with the item of each input it was made from."""
        result = await _merge({"mode": "combine_by_key", "key": "id"}, LEFT, RIGHT)
        assert result.item_lineage(NODE) == [
            [("in0", 0, 0), ("in1", 0, 2)],
            [("in0", 0, 1), ("in1", 0, 0)],
        ]

    async def test_duplicate_keys_give_one_item_per_matching_pair(self) -> None:
        """Like SQL, two matches on the right give two items."""
        right = [{"id": 1, "tag": "a"}, {"id": 1, "tag": "b"}]
        result = await _merge({"mode": "combine_by_key", "key": "id"}, LEFT[:1], right)
        assert [item["tag"] for item in result.output_of(NODE)] == ["a", "b"]

    async def test_later_inputs_win_on_equal_field_names(self) -> None:
        """`{**input0, **input1}`: input 1's value replaces input 0's."""
        result = await _merge(
            {"mode": "combine_by_key", "key": "id"},
            [{"id": 1, "v": "left"}],
            [{"id": 1, "v": "right"}],
        )
        assert result.output_of(NODE) == [{"id": 1, "v": "right"}]

    async def test_the_key_may_be_a_dotted_path(self) -> None:
        """Nested keys match by JSON equality."""
        left = [{"user": {"id": "u1"}, "a": 1}]
        right = [{"user": {"id": "u1"}, "b": 2}, {"user": {"id": 1}, "b": 3}]
        result = await _merge({"mode": "combine_by_key", "key": "user.id"}, left, right)
        assert result.output_of(NODE) == [{"user": {"id": "u1"}, "a": 1, "b": 2}]

    async def test_items_without_the_key_never_match(self) -> None:
        """A missing or null key matches nothing, not even another missing key."""
        left = [{"x": 1}, {"id": None}]
        right = [{"y": 2}, {"id": None}]
        result = await _merge({"mode": "combine_by_key", "key": "id", "join": "outer"}, left, right)
        assert result.output_of(NODE) == left + right

    async def test_three_inputs_are_joined_left_to_right(self) -> None:
        """Input 2 joins the result of joining inputs 0 and 1."""
        result = await _merge(
            {"mode": "combine_by_key", "key": "id", "inputs": 3},
            [{"id": 1, "a": 1}], [{"id": 1, "b": 2}], [{"id": 1, "c": 3}],
        )  # fmt: skip
        assert result.output_of(NODE) == [{"id": 1, "a": 1, "b": 2, "c": 3}]
        assert result.item_lineage(NODE) == [[("in0", 0, 0), ("in1", 0, 0), ("in2", 0, 0)]]

    def test_combine_by_key_requires_a_key(self) -> None:
        """The key cannot be left out."""
        assert node_problems("merge", {"mode": "combine_by_key"}) == [
            "key is required when mode is combine_by_key"
        ]


class TestCombineByPosition:
    async def test_items_at_the_same_position_are_merged(self) -> None:
        """Item i of input 0 joins item i of input 1; extra items are dropped."""
        result = await _merge({"mode": "combine_by_position"}, LEFT, RIGHT[:2])
        assert result.output_of(NODE) == [
            {"id": 2, "name": "Ada", "city": "Oslo"},
            {"id": 4, "name": "Bob", "city": "Rome"},
        ]
        assert result.item_lineage(NODE)[1] == [("in0", 0, 1), ("in1", 0, 1)]

    async def test_include_unpaired_keeps_items_past_the_shorter_input(self) -> None:
        """With include_unpaired, the longer input's extra items pass through."""
        result = await _merge(
            {"mode": "combine_by_position", "include_unpaired": True}, LEFT, RIGHT[:1]
        )
        assert result.output_of(NODE)[1:] == LEFT[1:]
        assert result.item_lineage(NODE)[2] == [("in0", 0, 2)]


class TestChooseBranch:
    async def test_the_chosen_inputs_items_pass_through(self) -> None:
        """Only input `input`'s items are output, unchanged."""
        result = await _merge({"mode": "choose_branch", "input": 1}, LEFT, RIGHT)
        assert result.output_of(NODE) == RIGHT
        assert result.item_lineage(NODE)[0] == [("in1", 0, 0)]

    async def test_input_0_is_chosen_by_default(self) -> None:
        """`input` defaults to 0."""
        result = await _merge({"mode": "choose_branch"}, LEFT, RIGHT)
        assert result.output_of(NODE) == LEFT

    def test_choosing_an_input_that_does_not_exist_is_refused(self) -> None:
        """`input` must be below `inputs`."""
        assert node_problems("merge", {"mode": "choose_branch", "input": 2}) == [
            "input 2 does not exist: the node has 2 inputs"
        ]


class TestInputs:
    def test_a_connection_to_an_input_beyond_inputs_is_refused(self) -> None:
        """With the default 2 inputs, input 2 does not exist."""
        doc = document(
            [node(START, "manual"), node(NODE, "merge", {})],
            [edge(START, NODE, input_=0), edge(START, NODE, input_=2)],
        )
        assert any("input 2 does not exist" in p for p in problems(doc))

    def test_inputs_must_be_between_2_and_10(self) -> None:
        """One input, or eleven, is refused by the schema."""
        assert node_problems("merge", {"inputs": 1}) != []
        assert node_problems("merge", {"inputs": 11}) != []

    def test_inputs_may_not_be_an_expression(self) -> None:
        """The number of inputs shapes the graph, so it is known before a run."""
        assert node_problems("merge", {"inputs": "{{ 3 }}"}) == [
            "inputs must be a number, not an expression (it shapes the graph)"
        ]
