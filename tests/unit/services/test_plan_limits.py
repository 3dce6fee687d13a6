"""Plan limit decisions: exactly at the boundary, overrides, and the refusal's shape."""

from __future__ import annotations

from datetime import UTC, datetime

from linkflow.services.errors import Forbidden, RateLimited
from linkflow.services.plan_limits import (
    CONCURRENCY_RETRY_AFTER_S,
    Limit,
    Limits,
    decide,
    decide_executions,
    next_month,
    over_limit,
    refusal,
)

FREE = {
    Limit.EXECUTIONS_PER_MONTH: 1000,
    Limit.ACTIVE_WORKFLOWS: 5,
    Limit.TEAM_MEMBERS: 1,
    Limit.MAX_CONCURRENT_EXECUTIONS: 2,
    Limit.RETENTION_DAYS: 7,
}


class TestDecide:
    def test_the_last_slot_passes_and_the_next_does_not(self) -> None:
        limits = Limits(FREE)
        assert decide(limits, Limit.ACTIVE_WORKFLOWS, 4).allowed
        assert not decide(limits, Limit.ACTIVE_WORKFLOWS, 5).allowed
        assert not decide(limits, Limit.ACTIVE_WORKFLOWS, 4, adding=2).allowed

    def test_none_is_unlimited_and_zero_allows_nothing(self) -> None:
        limits = Limits({Limit.TEAM_MEMBERS: None, Limit.ACTIVE_WORKFLOWS: 0})
        assert decide(limits, Limit.TEAM_MEMBERS, 10**9).allowed
        assert not decide(limits, Limit.ACTIVE_WORKFLOWS, 0).allowed

    def test_max_concurrent_is_decided_like_any_counted_limit(self) -> None:
        """For the hot path: 2 running on free, a third waits."""
        limits = Limits(FREE)
        assert decide(limits, Limit.MAX_CONCURRENT_EXECUTIONS, 1).allowed
        assert not decide(limits, Limit.MAX_CONCURRENT_EXECUTIONS, 2).allowed


class TestOverrides:
    def test_an_override_replaces_the_plan_limit_and_none_lifts_it(self) -> None:
        limits = Limits.effective(FREE, {"team_members": 50, "active_workflows": None})
        assert limits.of(Limit.TEAM_MEMBERS) == 50
        assert limits.of(Limit.ACTIVE_WORKFLOWS) is None
        assert limits.of(Limit.EXECUTIONS_PER_MONTH) == 1000

    def test_unknown_names_and_bad_values_are_ignored(self) -> None:
        limits = Limits.effective(
            FREE, {"bogus": 3, "team_members": -1, "active_workflows": True, "retention_days": "9"}
        )
        assert limits.as_dict() == {limit.value: value for limit, value in FREE.items()}


class TestExecutionsPerMonth:
    def test_a_refusal_says_when_the_month_resets(self) -> None:
        now = datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC)
        verdict = decide_executions(Limits(FREE), 1000, now=now)
        assert not verdict.allowed
        assert verdict.retry_after_s == 30
        assert next_month(now) == datetime(2027, 1, 1, tzinfo=UTC)
        assert decide_executions(Limits(FREE), 999, now=now).allowed

    def test_the_refusal_is_a_429_plan_limit_with_the_facts(self) -> None:
        now = datetime(2026, 6, 15, tzinfo=UTC)
        error = refusal(decide_executions(Limits(FREE), 1000, now=now))
        assert isinstance(error, RateLimited)
        assert error.code == "plan_limit"
        assert error.retry_after_s == 16 * 86400
        assert error.extra == {"limit": "executions_per_month", "value": 1000, "usage": 1000}


class TestRefusal:
    def test_a_control_plane_refusal_is_a_403_naming_limit_value_and_usage(self) -> None:
        error = refusal(decide(Limits(FREE), Limit.ACTIVE_WORKFLOWS, 5))
        assert isinstance(error, Forbidden)
        assert error.code == "plan_limit"
        assert error.extra == {"limit": "active_workflows", "value": 5, "usage": 5}
        assert "5 active workflows" in error.detail


class TestOverLimit:
    """The refusals of the writer's counters, as the API and webhooks answer them."""

    def test_the_monthly_one_waits_for_the_subscription_period_to_end(self) -> None:
        now = datetime(2026, 6, 15, 12, tzinfo=UTC)
        end = datetime(2026, 6, 20, 12, tzinfo=UTC)
        error = refusal(over_limit(Limit.EXECUTIONS_PER_MONTH, 10, 10, now=now, period_end=end))
        assert isinstance(error, RateLimited)
        assert error.retry_after_s == 5 * 86400
        assert error.extra == {"limit": "executions_per_month", "value": 10, "usage": 10}

    def test_the_concurrency_one_says_to_try_again_shortly(self) -> None:
        now = datetime(2026, 6, 15, tzinfo=UTC)
        error = refusal(over_limit(Limit.MAX_CONCURRENT_EXECUTIONS, 2, 2, now=now))
        assert isinstance(error, RateLimited)
        assert error.code == "plan_limit"
        assert error.retry_after_s == CONCURRENCY_RETRY_AFTER_S
        assert error.extra == {"limit": "max_concurrent_executions", "value": 2, "usage": 2}
        assert "allows 2 executions at once and 2 are queued or running" in error.detail
