"""Document validation: every problem listed, each with its node id."""

from __future__ import annotations

import pytest

from linkflow.engine import InvalidWorkflow, Problem
from tests.unit.engine._support import document, edge, engine, node


def problems(doc: object) -> list[Problem]:
    with pytest.raises(InvalidWorkflow) as caught:
        engine().compile(doc)
    return caught.value.problems


def test_every_problem_is_listed_with_its_node_id() -> None:
    """Unknown type, duplicate id, dangling connection and bad parameters, all at once."""
    found = problems(document(
        [node("start", "manual"), node("start", "noop"), node("x", "no_such_type"),
         node("lim", "limit", parameters={"max_items": -3})],
        [edge("start", "ghost")],
    ))  # fmt: skip
    codes = {(p.node_id, p.code) for p in found}
    assert ("start", "duplicate_id") in codes
    assert ("x", "unknown_type") in codes
    assert ("ghost", "dangling") in codes
    assert ("lim", "invalid_parameter") in codes


def test_a_cycle_without_a_loop_node_is_refused() -> None:
    """a → b → a is a cycle that does not pass through a loop node."""
    found = problems(document(
        [node("start", "manual"), node("a", "noop"), node("b", "noop")],
        [edge("start", "a"), edge("a", "b"), edge("b", "a")],
    ))  # fmt: skip
    assert [p.code for p in found] == ["cycle"]
    assert found[0].node_id == "a"


def test_a_cycle_through_a_loop_node_is_accepted() -> None:
    """The loop body may feed back into its loop node."""
    engine().compile(document(
        [node("start", "manual"), node("l", "loop"), node("b", "noop")],
        [edge("start", "l"), edge("l", "b", "loop"), edge("b", "l")],
    ))  # fmt: skip


def test_an_expression_that_does_not_parse_is_reported_with_its_parameter() -> None:
    """A syntax error names node, parameter path and position."""
    found = problems(document(
        [node("start", "manual"),
         node("s", "set", parameters={"fields": {"x": "{{ json.a + }}"}})],
        [edge("start", "s")],
    ))  # fmt: skip
    assert found[0].node_id == "s"
    assert found[0].field == "parameters.fields.x"
    assert found[0].code == "expression_syntax"


def test_an_expression_is_accepted_where_the_schema_wants_a_number() -> None:
    """`batch_size: "{{ vars.size }}"` is valid: its value is known only at run time."""
    engine().compile(document(
        [node("start", "manual"), node("l", "limit", parameters={"max_items": "{{ vars.n }}"})],
        [edge("start", "l")],
    ))  # fmt: skip


def test_unknown_outputs_and_inputs_are_refused() -> None:
    """`if` has no output `maybe`; `noop` has no input 3."""
    found = problems(document(
        [node("start", "manual"), node("c", "if", parameters={"condition": "{{ true }}"}),
         node("n", "noop")],
        [edge("start", "c"), edge("c", "n", "maybe"), edge("start", "n", input_=3)],
    ))  # fmt: skip
    assert {p.code for p in found} == {"unknown_output", "unknown_input"}


def test_shape_errors_name_the_node_and_field() -> None:
    """A bad id and a wrong field type are reported before anything else."""
    found = problems({"nodes": [{"id": "bad id!", "type": "noop"},
                                {"id": "ok", "type": "noop", "timeout_s": "soon"}]})  # fmt: skip
    assert {(p.node_id, p.field) for p in found} == {("bad id!", "id"), ("ok", "timeout_s")}


def test_a_document_that_is_not_an_object_is_refused() -> None:
    """A JSON list is not a workflow."""
    assert problems([1, 2])[0].message == "a workflow document is a JSON object"


def test_duplicate_display_names_are_refused() -> None:
    """Two nodes may not share a display name: `node["name"]` must be unambiguous."""
    found = problems(document(
        [node("a", "manual", name="Same"), node("b", "noop", name="Same")], [edge("a", "b")],
    ))  # fmt: skip
    assert [(p.node_id, p.code) for p in found] == [("b", "duplicate_name")]
