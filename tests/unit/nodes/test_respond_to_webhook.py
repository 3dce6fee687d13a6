"""respond_to_webhook: an engine-level response event, as soon as the node runs."""

from __future__ import annotations

from tests.unit.engine._support import document, edge, node, run


async def test_the_response_is_recorded_before_the_execution_goes_on() -> None:
    """Status, headers and body come from expressions; later nodes still run."""
    doc = document(
        [
            node("hook", "webhook", parameters={"path": "x", "response_mode": "respond_node"}),
            node("answer", "respond_to_webhook", parameters={
                "status": 201, "headers": {"X-Id": "{{ json.body.id }}"},
                "body": {"created": "{{ json.body.id }}"}}),
            node("after", "set", parameters={"fields": {"later": True}}),
        ],
        [edge("hook", "answer"), edge("answer", "after")],
    )  # fmt: skip
    result = await run(doc, {"body": {"id": 7}})
    assert result.response == {"status": 201, "headers": {"X-Id": "7"}, "body": {"created": 7}}
    types = [e.type for e in result.events]
    assert types.index("execution.responded") < types.index("execution.completed")
    assert result.output == [{"body": {"id": 7}, "later": True}]


async def test_the_body_defaults_to_the_first_item_and_only_the_first_answer_counts() -> None:
    """Two respond nodes: the caller gets the first one's answer."""
    doc = document(
        [
            node("start", "manual"),
            node("one", "respond_to_webhook"),
            node("two", "respond_to_webhook", parameters={"status": 500}),
        ],
        [edge("start", "one"), edge("one", "two")],
    )
    result = await run(doc, [{"a": 1}, {"a": 2}])
    assert result.response == {"status": 200, "headers": {}, "body": {"a": 1}}
