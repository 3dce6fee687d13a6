"""The error trigger emits the failed execution's summary as one item."""

from __future__ import annotations

from tests.unit.nodes._support import NODE, run_trigger

FAILURE = {
    "execution": {"id": "e-1"},
    "workflow": {"id": "w-1", "name": "Nightly"},
    "error": {"message": "boom", "node_id": "fetch"},
}


class TestErrorTrigger:
    async def test_emits_the_failure_summary_as_one_item(self) -> None:
        """The trigger input `{execution, workflow, error}` is the item as it is."""
        result = await run_trigger("error", input_=FAILURE)
        assert result.status == "completed"
        assert result.output_of(NODE) == [FAILURE]

    async def test_a_list_input_stays_one_item(self) -> None:
        """The summary is never split: a list input becomes one `{"value": [...]}` item."""
        result = await run_trigger("error", input_=[FAILURE, FAILURE])
        assert result.output_of(NODE) == [{"value": [FAILURE, FAILURE]}]

    async def test_no_input_is_one_empty_item(self) -> None:
        """Run by hand without input, the workflow still starts with one item."""
        result = await run_trigger("error")
        assert result.output_of(NODE) == [{}]
