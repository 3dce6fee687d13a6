"""Every workflow under examples/ runs and gives the result its name promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from linkflow.engine import run_workflow

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def load(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


def test_every_example_is_covered_here() -> None:
    """A new example file needs a test below."""
    covered = {"greet-adults.json", "batch-loop.json", "order-lines.json",
               "error-handling.json", "merge-by-key.json",
               # run through `linkflow run` in tests/e2e/test_cli_run.py:
               "subworkflow.json", "error-workflow.json"}  # fmt: skip
    workflows = {p.name for p in EXAMPLES.glob("*.json") if not p.name.endswith(".input.json")}
    assert workflows == covered


@pytest.mark.parametrize(("body", "message"), [
    ({"name": "Ada", "age": 36}, "Welcome Ada"), ({"name": "Tim", "age": 9}, "Sorry")
])  # fmt: skip
async def test_greet_adults_branches_on_age(body: dict[str, Any], message: str) -> None:
    """The contract's example: one branch runs, merge passes its item on."""
    result = await run_workflow(load("greet-adults.json"), input={"method": "POST", "body": body})
    assert result.output == [{"msg": message}]


async def test_batch_loop_prices_every_item_and_keeps_the_top_two() -> None:
    """The loop body prices 5 items in 3 batches; sort and limit pick the two largest."""
    rows = [("a", 1, 9.99), ("b", 3, 2.5), ("c", 10, 1.1), ("d", 2, 20), ("e", 1, 1)]
    items = [{"sku": s, "qty": q, "unit_price": p} for s, q, p in rows]
    result = await run_workflow(load("batch-loop.json"), input=items)
    assert result.status == "completed"
    assert result.run_count("price") == 3
    assert [(i["sku"], i["total"]) for i in result.output] == [("d", 40), ("c", 11.0)]


async def test_order_lines_trace_back_to_their_order_through_split_and_filter() -> None:
    """Lineage reaches the order item from each filtered line."""
    orders = [
        {"id": "o1", "customer": "ada", "lines": [{"sku": "x", "qty": 12}, {"sku": "y", "qty": 1}]},
        {
            "id": "o2",
            "customer": "tim",
            "lines": [{"sku": "z", "qty": 30}, {"sku": "w", "qty": 10}],
        },
    ]
    result = await run_workflow(load("order-lines.json"), input=orders)
    assert result.output == [
        {"order": "o1", "customer": "ADA", "sku": "x"},
        {"order": "o2", "customer": "TIM", "sku": "z"},
    ]


async def test_error_handling_routes_bad_records_and_reports_both() -> None:
    """Bad records take the error output, and the report counts both kinds."""
    result = await run_workflow(
        load("error-handling.json"), input=[{"records": [{"id": 1}]}, {"records": "oops"}]
    )
    assert result.status == "completed"
    statuses = [r["status"] for r in result.output[0]["results"]]
    assert statuses == ["imported", "rejected"]


async def test_error_handling_stops_when_nothing_imports() -> None:
    """With only bad records the workflow fails at stop_and_error."""
    result = await run_workflow(load("error-handling.json"), input=[{"records": 5}])
    assert result.status == "failed"
    assert result.error == {"message": "nothing could be imported", "node_id": "fail"}


async def test_merge_by_key_left_joins_users_with_plans() -> None:
    """Every user appears, with a plan where one matches."""
    data = {"users": [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Tim"}],
            "plans": [{"user_id": 1, "name": "pro"}]}  # fmt: skip
    result = await run_workflow(load("merge-by-key.json"), input=data)
    assert result.output == [{"id": 1, "name": "Ada", "plan": "pro"}, {"id": 2, "name": "Tim"}]
