"""The code node, through the real engine and a real sandboxed worker pool.

The pool starts real worker processes (bubblewrap when it works here, else the
unsandboxed mode, which these tests allow: they are about the node, and
tests/integration/test_sandbox.py is about the isolation).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from linkflow.engine import Engine, EventType, NodeServices, RunResult
from linkflow.nodes.registry import default_registry
from linkflow.nodes.sdk import CodeMode, CodeRequest
from linkflow.sandbox import CodePool
from tests.unit.nodes._support import (
    NODE,
    START,
    CountingEntropy,
    FixedClock,
    document,
    edge,
    node,
    node_problems,
)


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[CodePool]:
    runner = CodePool(workers=2, timeout_s=10.0, memory_mb=256, allow_unsandboxed=True)
    yield runner
    await runner.close()


@pytest.fixture(scope="module")
def engine(pool: CodePool) -> Engine:
    return Engine(default_registry(plugins=False), services=NodeServices(code=pool))


async def run_code(engine: Engine, code: str, input_: Any, **parameters: Any) -> RunResult:
    """Run `manual (START) → code (NODE)` with `input_` as the execution's input."""
    doc = document(
        [node(START, "manual"), node(NODE, "code", {"code": code, **parameters})],
        [edge(START, NODE)],
    )
    workflow = engine.compile(doc)
    return await engine.run(workflow, input=input_, clock=FixedClock(), entropy=CountingEntropy())


def failure(result: RunResult) -> dict[str, Any]:
    """The error the code node failed with, as recorded in its `node.failed` event."""
    for event in result.events:
        if event.type is EventType.NODE_FAILED and event.node_id == NODE:
            error: dict[str, Any] = event.data["error"]
            return error
    raise AssertionError(f"the node did not fail: {result.status}")


class TestAllItems:
    async def test_the_code_sees_all_items_and_returns_the_output_list(
        self, engine: Engine
    ) -> None:
        """`items` is the list of the input items' objects."""
        code = (
            "total = sum(i['n'] for i in items)\n"
            "return [{'n': i['n'], 'share': i['n'] / total} for i in items]"
        )
        result = await run_code(engine, code, [{"n": 1}, {"n": 3}])
        assert result.status == "completed"
        assert result.output_of(NODE) == [{"n": 1, "share": 0.25}, {"n": 3, "share": 0.75}]

    async def test_values_that_are_not_objects_are_wrapped(self, engine: Engine) -> None:
        """Each non-object element becomes `{"value": element}`."""
        result = await run_code(engine, "return [1, 'two', None, {'x': 3}]", {})
        assert result.output_of(NODE) == [
            {"value": 1}, {"value": "two"}, {"value": None}, {"x": 3},
        ]  # fmt: skip

    async def test_one_object_returned_is_one_item(self, engine: Engine) -> None:
        """Returning a dict instead of a list is one item."""
        result = await run_code(engine, "return {'count': len(items)}", [{}, {}, {}])
        assert result.output_of(NODE) == [{"count": 3}]

    async def test_as_many_items_as_received_pair_one_to_one(self, engine: Engine) -> None:
        """Output item i descends from input item i when the counts match."""
        result = await run_code(engine, "return [{'i': i} for i, _ in enumerate(items)]", [{}, {}])
        assert result.item_lineage(NODE) == [[(START, 0, 0)], [(START, 0, 1)]]

    async def test_a_different_count_has_no_lineage(self, engine: Engine) -> None:
        """An aggregate made by code descends from no item in particular."""
        result = await run_code(engine, "return [{'n': len(items)}]", [{}, {}])
        assert result.output_of(NODE) == [{"n": 2}]
        assert result.item_lineage(NODE) == [[]]

    async def test_expressions_in_the_code_are_not_evaluated(self, engine: Engine) -> None:
        """`code` is a raw parameter: `{{ }}` reaches Python as written."""
        result = await run_code(engine, "return [{'s': '{{ json.x }}'}]", {"x": 1})
        assert result.output_of(NODE) == [{"s": "{{ json.x }}"}]

    async def test_returning_nothing_is_a_clear_error(self, engine: Engine) -> None:
        """A forgotten `return` is named as such."""
        result = await run_code(engine, "x = 1", {})
        assert result.status == "failed"
        assert failure(result)["message"] == (
            "the code must return a list of items; it returned nothing (None)"
        )


class TestEachItem:
    async def test_the_code_runs_once_per_item(self, engine: Engine) -> None:
        """`item` and `item_index` are the current item and its position."""
        result = await run_code(
            engine,
            "return {**item, 'double': item['n'] * 2, 'at': item_index}",
            [{"n": 1}, {"n": 5}],
            mode="each_item",
        )
        assert result.output_of(NODE) == [
            {"n": 1, "double": 2, "at": 0}, {"n": 5, "double": 10, "at": 1},
        ]  # fmt: skip

    async def test_items_pair_one_to_one(self, engine: Engine) -> None:
        """Output item i descends from input item i."""
        result = await run_code(engine, "return {'v': 1}", [{}, {}], mode="each_item")
        assert result.item_lineage(NODE) == [[(START, 0, 0)], [(START, 0, 1)]]

    async def test_an_error_names_the_item_and_the_line(self, engine: Engine) -> None:
        """The failing item's index is recorded with the error."""
        code = "x = 10\nreturn {'r': x / item['n']}"
        result = await run_code(engine, code, [{"n": 2}, {"n": 0}], mode="each_item")
        error = failure(result)
        assert error["message"] == "ZeroDivisionError: division by zero (line 2)"
        assert error["item_index"] == 1


class TestErrors:
    async def test_an_exception_names_its_type_message_and_line(self, engine: Engine) -> None:
        """The line number is the user's own (1-based, as in their editor)."""
        code = "a = 1\nb = 0\nreturn [{'x': a / b}]"
        result = await run_code(engine, code, {})
        assert result.status == "failed"
        assert result.error is not None
        assert result.error["message"] == "ZeroDivisionError: division by zero (line 3)"

    async def test_printed_lines_accompany_the_error(self, engine: Engine) -> None:
        """What the code printed before failing is the error's description."""
        code = "print('checking', len(items))\nraise ValueError('bad')"
        result = await run_code(engine, code, {})
        error = failure(result)
        assert error["message"] == "ValueError: bad (line 2)"
        assert error["description"] == "printed before the error:\nchecking 1"

    async def test_a_result_that_is_not_json_is_refused_naming_where(
        self, engine: Engine
    ) -> None:
        """A datetime deep in the result is pointed at."""
        code = "import datetime\nreturn [{'ok': 1}, {'when': datetime.date(2024, 1, 1)}]"
        result = await run_code(engine, code, {})
        assert failure(result)["message"] == (
            "the result is not JSON: result[1]['when'] is a datetime.date "
            "(convert it, e.g. with str())"
        )

    async def test_the_nodes_timeout_stops_the_code(self, engine: Engine) -> None:
        """`timeout_s` is the wall-clock limit of this node's code."""
        result = await run_code(engine, "while True:\n    pass", {}, timeout_s=0.5)
        assert failure(result)["message"] == "the code timed out after 0.5 s"

    def test_a_syntax_error_is_refused_when_the_workflow_is_saved(self) -> None:
        """The code is parsed (not run) at validation, naming the line."""
        problems = node_problems("code", {"code": "x = 1\nif x\n    return []"})
        assert problems == ["parameter 'code': SyntaxError: expected ':' (line 2)"]

    def test_a_top_level_return_is_valid(self) -> None:
        """The code is a function body."""
        assert node_problems("code", {"code": "return items"}) == []

    def test_mode_must_be_known(self) -> None:
        """The schema lists the modes."""
        assert node_problems("code", {"code": "return items", "mode": "per_item"}) != []

    def test_code_is_required(self) -> None:
        """A code node without code is refused."""
        assert node_problems("code", {}) != []


class TestPrintedOutput:
    async def test_printed_lines_are_recorded_in_the_node_run(self, engine: Engine) -> None:
        """`print` in user code lands in the node.completed event's logs."""
        result = await run_code(engine, "print('seen', len(items))\nreturn items", [{"a": 1}])
        completed = next(
            e for e in result.events if e.type is EventType.NODE_COMPLETED and e.node_id == NODE
        )
        assert [line["message"] for line in completed.data["logs"]] == ["seen 1"]

    async def test_print_is_captured_line_by_line(self, pool: CodePool) -> None:
        """The runner returns printed lines, split at newlines."""
        request = CodeRequest(
            code="print('hello', 42)\nprint('a\\nb')\nreturn items",
            mode=CodeMode.ALL_ITEMS,
            items=[{}],
        )
        result = await pool.run(request)
        assert list(result.logs) == ["hello 42", "a", "b"]
        assert result.value == [{}]
