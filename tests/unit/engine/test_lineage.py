"""Item lineage: `node["x"].item` after branches, merges, splits and aggregates."""

from __future__ import annotations

from tests.unit.engine._support import document, edge, node, run

PEOPLE = [{"name": "Ada", "age": 36, "pets": ["cat", "owl"]},
          {"name": "Tim", "age": 9, "pets": ["dog"]}]  # fmt: skip


async def test_item_follows_lineage_through_a_branch_and_a_merge() -> None:
    """After if + merge, each item still finds the trigger item it came from."""
    doc = document(
        [
            node("start", "manual"),
            node("check", "if", parameters={"condition": "{{ json.age >= 18 }}"}),
            node("adult", "set", parameters={"fields": {"kind": "adult"}, "keep_only_set": True}),
            node("minor", "set", parameters={"fields": {"kind": "minor"}, "keep_only_set": True}),
            node("join", "merge", parameters={"mode": "append"}),
            node("name", "set", parameters={"fields": {"who": "{{ node.start.item.name }}"}}),
        ],
        [edge("start", "check"), edge("check", "adult", "true"), edge("check", "minor", "false"),
         edge("adult", "join", input_=0), edge("minor", "join", input_=1), edge("join", "name")],
    )  # fmt: skip
    result = await run(doc, list(reversed(PEOPLE)))
    assert [(i["kind"], i["who"]) for i in result.output] == [("adult", "Ada"), ("minor", "Tim")]


async def test_item_follows_lineage_through_split_out() -> None:
    """Each pet item traces back to its owner."""
    doc = document(
        [
            node("start", "manual"),
            node("pets", "split_out", parameters={"field": "pets", "destination": "pet"}),
            node("owner", "set", parameters={"fields": {"owner": "{{ node['start'].item.name }}"}}),
        ],
        [edge("start", "pets"), edge("pets", "owner")],
    )
    result = await run(doc, PEOPLE)
    assert [(i["pet"], i["owner"]) for i in result.output] == [
        ("cat", "Ada"),
        ("owl", "Ada"),
        ("dog", "Tim"),
    ]


async def test_item_after_an_aggregate_is_ambiguous_and_the_error_names_both_nodes() -> None:
    """An aggregated item descends from every input: the error names both nodes and items."""
    doc = document(
        [
            node("start", "manual"),
            node("all", "aggregate", parameters={"mode": "all_items"}),
            node("who", "set", parameters={"fields": {"who": "{{ node.start.item.name }}"}}),
        ],
        [edge("start", "all"), edge("all", "who")],
    )
    result = await run(doc, PEOPLE)
    assert result.status == "failed"
    message = result.error["message"]
    assert "'start'" in message
    assert "'all'" in message
    assert "items 0, 1" in message


async def test_node_json_and_items_read_any_upstream_node() -> None:
    """`node[x].json` is x's first item and `.items` all of them, by id or display name."""
    doc = document(
        [
            node("start", "manual", name="Trigger"),
            node("count", "aggregate", parameters={"mode": "all_items"}),
            node("show", "set", parameters={"fields": {
                "first": "{{ node['Trigger'].json.name }}",
                "count": "{{ node.start.items | length }}"}}),
        ],
        [edge("start", "count"), edge("count", "show")],
    )  # fmt: skip
    result = await run(doc, PEOPLE)
    assert result.output[0]["first"] == "Ada"
    assert result.output[0]["count"] == 2


async def test_lineage_is_recorded_in_the_history() -> None:
    """Output items carry their source items, so lineage survives a replay."""
    doc = document(
        [node("start", "manual"),
         node("pets", "split_out", parameters={"field": "pets", "destination": "pet"})],
        [edge("start", "pets")],
    )  # fmt: skip
    result = await run(doc, PEOPLE)
    assert result.item_lineage("pets") == [[("start", 0, 0)], [("start", 0, 0)], [("start", 0, 1)]]
    completed = next(e for e in result.events if e.type == "node.completed" and e.node_id == "pets")
    assert [item.get("paired") for item in completed.data["outputs"]["main"]] == [
        None,
        [[0, 0]],
        [[0, 1]],
    ]


async def test_a_reference_to_a_node_that_did_not_run_is_a_clear_error() -> None:
    """Asking for a skipped node's items fails with a message naming it."""
    doc = document(
        [
            node("start", "manual"),
            node("check", "if", parameters={"condition": "{{ false }}"}),
            node("never", "noop"),
            node("read", "set", parameters={"fields": {"x": "{{ node.never.json }}"}}),
        ],
        [edge("start", "check"), edge("check", "never", "true"), edge("start", "read")],
    )
    result = await run(doc, {})
    assert result.status == "failed"
    assert "'never' has not produced any items" in result.error["message"]
