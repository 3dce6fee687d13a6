"""The loop node feeds items to its body batch by batch, then emits them on `done`."""

from __future__ import annotations

from typing import Any

from tests.unit.nodes._support import START, document, edge, node, node_problems, run

LOOP = "loop"
BODY = "body"
AFTER = "after"


def _loop_document(batch_size: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """manual → loop; loop.loop → body → loop; loop.done → after."""
    body = body or node(BODY, "set", {"fields": {"seen": True, "batch_first": "{{ items[0].n }}"}})
    return document(
        [node(START, "manual"), node(LOOP, "loop", {"batch_size": batch_size}), body,
         node(AFTER, "noop")],
        [edge(START, LOOP), edge(LOOP, BODY, "loop"), edge(BODY, LOOP), edge(LOOP, AFTER, "done")],
    )  # fmt: skip


ITEMS = [{"n": n} for n in range(5)]


class TestLoop:
    async def test_the_body_sees_one_batch_per_run(self) -> None:
        """Five items in batches of two: the body runs three times with 2, 2 and 1 items."""
        result = await run(_loop_document(2), ITEMS)
        assert result.status == "completed"
        assert [result.output_of(BODY, run=r) for r in range(3)] == [
            [{"n": 0, "seen": True, "batch_first": 0}, {"n": 1, "seen": True, "batch_first": 0}],
            [{"n": 2, "seen": True, "batch_first": 2}, {"n": 3, "seen": True, "batch_first": 2}],
            [{"n": 4, "seen": True, "batch_first": 4}],
        ]

    async def test_done_emits_everything_the_body_handed_back_in_order(self) -> None:
        """After the last batch comes back, `done` carries all returned items."""
        result = await run(_loop_document(2), ITEMS)
        done = result.output_of(LOOP, "done")
        assert [item["n"] for item in done] == [0, 1, 2, 3, 4]
        assert all(item["seen"] for item in done)
        assert result.output_of(AFTER) == done

    async def test_the_loop_node_runs_once_per_batch_plus_once_to_finish(self) -> None:
        """Runs 0..2 send batches on `loop`; run 3 sends `done` and nothing on `loop`."""
        result = await run(_loop_document(2), ITEMS)
        assert result.run_count(LOOP) == 4
        assert result.output_of(LOOP, "loop", run=3) == []
        assert result.output_of(LOOP, "done", run=2) == []

    async def test_a_batch_larger_than_the_input_is_one_pass(self) -> None:
        """With the default batch size of 10, five items are one batch."""
        doc = _loop_document(2)
        doc["nodes"][1]["parameters"] = {}
        result = await run(doc, ITEMS)
        assert result.run_count(LOOP) == 2
        assert len(result.output_of(BODY, run=0)) == 5
        assert len(result.output_of(LOOP, "done")) == 5

    async def test_later_batches_descend_from_the_items_first_received(self) -> None:
        """Batch items of later runs trace back to the manual trigger's items."""
        result = await run(_loop_document(2), ITEMS)
        assert result.item_lineage(LOOP, "loop", run=0) == [[(START, 0, 0)], [(START, 0, 1)]]
        assert result.item_lineage(LOOP, "loop", run=1) == [[(START, 0, 2)], [(START, 0, 3)]]
        assert result.item_lineage(LOOP, "loop", run=2) == [[(START, 0, 4)]]

    async def test_done_items_descend_from_the_items_handed_back(self) -> None:
        """Each `done` item traces to the body's run and index that returned it."""
        result = await run(_loop_document(2), ITEMS)
        assert result.item_lineage(LOOP, "done") == [
            [(BODY, 0, 0)], [(BODY, 0, 1)], [(BODY, 1, 0)], [(BODY, 1, 1)], [(BODY, 2, 0)],
        ]  # fmt: skip

    async def test_done_items_can_reach_the_original_item_by_expression(self) -> None:
        """`node["start"].item` follows lineage through the body and the loop's batches."""
        doc = _loop_document(2)
        doc["nodes"][3] = node(AFTER, "set", {"fields": {"origin": '{{ node["start"].item.n }}'}})
        result = await run(doc, ITEMS)
        assert [item["origin"] for item in result.output_of(AFTER)] == [0, 1, 2, 3, 4]

    async def test_a_body_that_changes_item_counts_hands_back_what_it_made(self) -> None:
        """`done` holds what came back, e.g. two items per item from a split_out body."""
        body = node(BODY, "split_out", {"field": "pair"})
        items = [{"pair": [n, n]} for n in range(3)]
        result = await run(_loop_document(2, body), items)
        assert result.output_of(LOOP, "done") == [{"pair": v} for v in (0, 0, 1, 1, 2, 2)]

    async def test_a_batch_the_body_drops_entirely_still_moves_the_loop_on(self) -> None:
        """When nothing comes back for a batch, the next batch is sent all the same."""
        body = node(BODY, "filter", {"condition": "{{ json.n >= 2 }}"})
        result = await run(_loop_document(2, body), ITEMS)
        assert result.run_count(LOOP) == 4
        assert result.output_of(AFTER) == [{"n": 2}, {"n": 3}, {"n": 4}]

    async def test_a_finished_loop_starts_afresh_on_its_next_activation(self) -> None:
        """Nested loops: the inner loop restarts for each outer batch."""
        split = {"field": "xs", "include": "other_fields", "destination": "x"}
        doc = document(
            [node(START, "manual"), node("outer", "loop", {"batch_size": 2}),
             node("split", "split_out", split), node("inner", "loop", {"batch_size": 1}),
             node("mark", "set", {"fields": {"seen": True}}),
             node("collect", "aggregate", {}), node(AFTER, "noop")],
            [edge(START, "outer"), edge("outer", "split", "loop"), edge("split", "inner"),
             edge("inner", "mark", "loop"), edge("mark", "inner"), edge("inner", "collect", "done"),
             edge("collect", "outer"), edge("outer", AFTER, "done")],
        )  # fmt: skip
        result = await run(doc, [{"g": g, "xs": [g * 10, g * 10 + 1]} for g in range(3)])
        assert result.status == "completed"
        assert [[item["x"] for item in out["data"]] for out in result.output_of(AFTER)] == [
            [0, 1, 10, 11], [20, 21],
        ]  # fmt: skip
        # Outer: 2 batches + done. Inner: (4 items + done) + (2 items + done).
        assert (result.run_count("outer"), result.run_count("inner")) == (3, 8)

    def test_batch_size_is_at_least_one(self) -> None:
        """A batch of zero items is refused."""
        assert node_problems("loop", {"batch_size": 0}) != []
