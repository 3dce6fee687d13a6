"""Items and routing: named outputs, skipping, merge settling, order of execution."""

from __future__ import annotations

from tests.unit.engine._support import document, edge, node, run, started_order


def _greet_adults() -> dict:
    return document(
        [
            node("start", "manual"),
            node("check", "if", parameters={"condition": "{{ json.age >= 18 }}"}),
            node("adult", "set", parameters={"fields": {"msg": "Welcome {{ json.name }}"}}),
            node("minor", "set", parameters={"fields": {"msg": "Sorry"}}),
            node("join", "merge", parameters={"mode": "append"}),
        ],
        [
            edge("start", "check"),
            edge("check", "adult", "true"),
            edge("check", "minor", "false"),
            edge("adult", "join", input_=0),
            edge("minor", "join", input_=1),
        ],
    )


async def test_if_routes_each_item_to_its_branch_and_merge_appends_both() -> None:
    """Items split by `if` meet again in `merge`, input 0 first."""
    result = await run(_greet_adults(), [{"name": "Ada", "age": 36}, {"name": "Tim", "age": 9}])
    assert result.status == "completed"
    assert [item["msg"] for item in result.output] == ["Welcome Ada", "Sorry"]


async def test_a_branch_without_items_is_skipped_and_merge_still_runs() -> None:
    """With only adults, `minor` is skipped but `merge` runs with the delivered input."""
    result = await run(_greet_adults(), [{"name": "Ada", "age": 36}])
    assert result.skipped("minor")
    assert result.ran("join")
    assert [item["msg"] for item in result.output] == ["Welcome Ada"]


async def test_skipping_spreads_only_downstream_of_the_empty_branch() -> None:
    """A node fed only by a skipped node is skipped; its sibling branch runs."""
    doc = document(
        [
            node("start", "manual"),
            node("check", "if", parameters={"condition": "{{ json.go }}"}),
            node("a", "noop"),
            node("a2", "noop"),
            node("b", "noop"),
        ],
        [edge("start", "check"), edge("check", "a", "true"), edge("a", "a2"),
         edge("check", "b", "false")],
    )  # fmt: skip
    result = await run(doc, {"go": False})
    assert result.skipped("a")
    assert result.skipped("a2")
    assert result.ran("b")


async def test_merge_waits_until_every_input_has_settled() -> None:
    """Merge runs once, after the longer branch finished, with both inputs."""
    doc = document(
        [
            node("start", "manual"),
            node("short", "set", parameters={"fields": {"path": "short"}}),
            node("long1", "set", parameters={"fields": {"path": "long"}}),
            node("long2", "noop"),
            node("long3", "noop"),
            node("join", "merge", parameters={"mode": "append"}),
        ],
        [edge("start", "short"), edge("start", "long1"), edge("long1", "long2"),
         edge("long2", "long3"), edge("short", "join", input_=0), edge("long3", "join", input_=1)],
    )  # fmt: skip
    result = await run(doc, {})
    assert result.run_count("join") == 1
    assert [item["path"] for item in result.output] == ["short", "long"]
    assert started_order(result)[-1] == "join"


async def test_order_of_execution_is_topological_then_document_order() -> None:
    """Ready nodes run in topological order, ties broken by their place in the document."""
    doc = document(
        [node("start", "manual"), node("b", "noop"), node("a", "noop"), node("c", "noop"),
         node("d", "noop")],
        [edge("start", "b"), edge("start", "a"), edge("a", "c"), edge("b", "d")],
    )  # fmt: skip
    result = await run(doc, {})
    assert started_order(result) == ["start", "b", "a", "c", "d"]


async def test_the_first_manual_trigger_starts_and_other_triggers_are_skipped() -> None:
    """A workflow with a webhook and a manual trigger runs from the manual one."""
    doc = document(
        [node("hook", "webhook", parameters={"path": "x"}), node("start", "manual"),
         node("after_hook", "noop"), node("after_start", "noop")],
        [edge("hook", "after_hook"), edge("start", "after_start")],
    )  # fmt: skip
    result = await run(doc, {"v": 1})
    assert result.skipped("hook")
    assert result.skipped("after_hook")
    assert result.output == [{"v": 1}]


async def test_manual_trigger_turns_a_list_input_into_one_item_per_element() -> None:
    """An object input is one item; a list input is many."""
    doc = document([node("start", "manual")], [])
    assert len((await run(doc, [{"a": 1}, {"a": 2}])).output) == 2
    assert (await run(doc, {"a": 1})).output == [{"a": 1}]


async def test_switch_sends_items_to_the_matching_output_or_fallback() -> None:
    """Each rule's output receives its items; unmatched items take the fallback."""
    doc = document(
        [
            node("start", "manual"),
            node("route", "switch", parameters={
                "rules": [{"condition": "{{ json.n < 0 }}", "output": "negative"},
                          {"condition": "{{ json.n == 0 }}", "output": "zero"}],
                "fallback": "positive"}),
            node("neg", "noop"), node("zero", "noop"), node("pos", "noop"),
        ],
        [edge("start", "route"), edge("route", "neg", "negative"),
         edge("route", "zero", "zero"), edge("route", "pos", "positive")],
    )  # fmt: skip
    result = await run(doc, [{"n": -1}, {"n": 0}, {"n": 5}, {"n": 7}])
    assert result.output_of("neg") == [{"n": -1}]
    assert result.output_of("zero") == [{"n": 0}]
    assert result.output_of("pos") == [{"n": 5}, {"n": 7}]


async def test_loop_runs_its_body_once_per_batch_then_emits_everything_on_done() -> None:
    """Five items in batches of two: the body runs three times, `done` gets all five."""
    doc = document(
        [
            node("start", "manual"),
            node("batches", "loop", parameters={"batch_size": 2}),
            node("body", "set", parameters={"fields": {"seen": True}}),
            node("after", "noop"),
        ],
        [edge("start", "batches"), edge("batches", "body", "loop"),
         edge("body", "batches"), edge("batches", "after", "done")],
    )  # fmt: skip
    result = await run(doc, [{"i": i} for i in range(5)])
    assert result.status == "completed"
    assert result.run_count("body") == 3
    assert [len(result.output_of("body", run=r)) for r in range(3)] == [2, 2, 1]
    assert result.output == [{"i": i, "seen": True} for i in range(5)]
    assert result.run_count("after") == 1


async def test_nested_loops_restart_the_inner_loop_for_each_outer_batch() -> None:
    """An inner loop inside an outer loop's body runs to completion per outer batch."""
    doc = document(
        [
            node("start", "manual"),
            node("outer", "loop", parameters={"batch_size": 2}),
            node("inner", "loop", parameters={"batch_size": 1}),
            node("work", "test_count"),
            node("end", "noop"),
        ],
        [edge("start", "outer"), edge("outer", "inner", "loop"), edge("inner", "work", "loop"),
         edge("work", "inner"), edge("inner", "outer", "done"), edge("outer", "end", "done")],
    )  # fmt: skip
    result = await run(doc, [{"i": i} for i in range(4)])
    assert result.status == "completed"
    assert result.run_count("work") == 4
    assert sorted(item["i"] for item in result.output) == [0, 1, 2, 3]


async def test_disabled_node_passes_its_input_through() -> None:
    """A disabled node does nothing and hands its items on unchanged."""
    doc = document(
        [node("start", "manual"),
         node("change", "set", parameters={"fields": {"x": 2}}, disabled=True)],
        [edge("start", "change")],
    )  # fmt: skip
    assert (await run(doc, {"x": 1})).output == [{"x": 1}]


async def test_expressions_see_vars_execution_and_trigger_items() -> None:
    """The contract's names are in scope: vars, execution, workflow, trigger, items."""
    doc = document(
        [
            node("start", "manual"),
            node("show", "set", parameters={"fields": {
                "var": "{{ vars.region }}", "mode": "{{ execution.mode }}",
                "first": "{{ trigger[0].n }}", "count": "{{ items | length }}",
                "index": "{{ item_index }}", "wf": "{{ workflow.name }}"}}),
        ],
        [edge("start", "show")],
    )  # fmt: skip
    eng_result = await run(doc, [{"n": 1}, {"n": 2}], variables={"region": "eu"})
    assert eng_result.output[0]["var"] == "eu"
    assert eng_result.output[1]["count"] == 2
    assert eng_result.output[1]["index"] == 1
    assert eng_result.output[0]["first"] == 1
    assert eng_result.output[0]["mode"] == "manual"
    assert eng_result.output[0]["wf"] == "test"


async def test_node_summaries_list_skipped_nodes_after_those_that_ran() -> None:
    """A branch nothing reached is reported as skipped, so a user sees why it is empty."""
    result = await run(_greet_adults(), [{"name": "Ada", "age": 36}])
    summaries = [(s["node_id"], s["status"]) for s in result.node_summaries()]
    assert summaries == [("start", "completed"), ("check", "completed"), ("adult", "completed"),
                         ("join", "completed"), ("minor", "skipped")]  # fmt: skip
