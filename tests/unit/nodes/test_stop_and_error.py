"""The stop-and-error node fails the execution with a message."""

from __future__ import annotations

from tests.unit.nodes._support import NODE, START, document, edge, node, run, run_node


class TestStopAndError:
    async def test_fails_the_execution_with_the_message(self) -> None:
        """The execution's error is the message and the node."""
        result = await run_node("stop_and_error", {"message": "Bad order"}, [{"id": 1}])
        assert result.status == "failed"
        assert result.error == {"message": "Bad order", "node_id": NODE}

    async def test_the_default_message_says_the_workflow_stopped(self) -> None:
        """Without a message: "Workflow stopped"."""
        result = await run_node("stop_and_error", {}, [{"id": 1}])
        assert result.error == {"message": "Workflow stopped", "node_id": NODE}

    async def test_the_message_may_use_the_first_items_data(self) -> None:
        """An expression in the message is evaluated for item 0."""
        result = await run_node(
            "stop_and_error", {"message": "Order {{ json.id }} is bad"}, [{"id": 9}, {"id": 3}]
        )
        assert result.error is not None
        assert result.error["message"] == "Order 9 is bad"

    async def test_the_error_is_not_retried(self) -> None:
        """A retry policy does not repeat a deliberate stop."""
        result = await run_node(
            "stop_and_error", {}, [{}], retry={"max_attempts": 3, "backoff_s": 0}
        )
        assert result.status == "failed"
        assert result.run_count(NODE) == 1
        assert not [e for e in result.events if e.type == "node.retrying"]

    async def test_nothing_happens_when_no_item_arrives(self) -> None:
        """A skipped stop_and_error does not fail the execution."""
        doc = document(
            [node(START, "manual"), node("gate", "filter", {"condition": False}),
             node(NODE, "stop_and_error", {})],
            [edge(START, "gate"), edge("gate", NODE)],
        )  # fmt: skip
        result = await run(doc, [{}])
        assert result.status == "completed"
        assert result.skipped(NODE)
