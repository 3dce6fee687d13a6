"""The schedule trigger emits its firing times and validates cron, interval and time zone."""

from __future__ import annotations

import pytest

from tests.unit.nodes._support import NODE, NOW, document, node, problems, run_trigger


def _problems(parameters: dict[str, object]) -> list[str]:
    return problems(document([node(NODE, "schedule", parameters)], []))


class TestScheduleRun:
    async def test_emits_the_times_given_by_the_scheduler(self) -> None:
        """The scheduler's `{scheduled_at, fired_at}` is the item."""
        fired = {
            "scheduled_at": "2024-05-01T08:00:00+00:00",
            "fired_at": "2024-05-01T08:00:02+00:00",
        }
        result = await run_trigger("schedule", {"cron": "0 8 * * *"}, fired)
        assert result.status == "completed"
        assert result.output_of(NODE) == [fired]

    async def test_a_run_by_hand_uses_the_recorded_now_for_both_times(self) -> None:
        """Without input both times are `ctx.now()`, never the system clock."""
        result = await run_trigger("schedule", {"interval_s": 60})
        assert result.output_of(NODE) == [
            {"scheduled_at": NOW.isoformat(), "fired_at": NOW.isoformat()}
        ]


class TestScheduleCheck:
    @pytest.mark.parametrize(
        "cron", ["*/5 * * * *", "0 9 * * MON-FRI", "30 0 9 1 * *", "@daily", "0 0 1,15 * *"]
    )
    def test_valid_cron_expressions_are_accepted(self, cron: str) -> None:
        """5 fields, 6 fields (seconds first), names and aliases are all valid."""
        assert _problems({"cron": cron, "timezone": "Europe/Paris"}) == []

    @pytest.mark.parametrize("cron", ["* * * *", "61 * * * *", "* * * * * * *", "every day"])
    def test_invalid_cron_expressions_are_refused(self, cron: str) -> None:
        """Wrong field counts and out-of-range values are named."""
        found = _problems({"cron": cron})
        assert len(found) == 1
        assert "cron" in found[0]

    def test_cron_and_interval_together_are_refused(self) -> None:
        """Exactly one of the two must be given."""
        assert _problems({"cron": "* * * * *", "interval_s": 10}) == [
            "give exactly one of cron and interval_s"
        ]

    def test_neither_cron_nor_interval_is_refused(self) -> None:
        """A schedule needs one of them."""
        assert _problems({}) == ["give exactly one of cron and interval_s"]

    def test_an_unknown_time_zone_is_refused(self) -> None:
        """The time zone must be an IANA name."""
        found = _problems({"cron": "* * * * *", "timezone": "Mars/Olympus"})
        assert len(found) == 1
        assert "Mars/Olympus" in found[0]

    def test_a_cron_expression_may_not_be_an_expression(self) -> None:
        """The scheduler computes times without running the workflow."""
        assert _problems({"cron": "{{ vars.cron }}"}) == [
            "cron must be written out, not an expression"
        ]

    def test_an_interval_below_one_second_is_refused(self) -> None:
        """interval_s is at least 1."""
        assert _problems({"interval_s": 0}) != []
