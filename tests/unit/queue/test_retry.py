"""backoff_s: the retry delay after a failed delivery."""

from __future__ import annotations

import pytest

from linkflow.queue import backoff_s


class TestBackoff:
    def test_doubles_from_one_second(self) -> None:
        """Attempts 1, 2, 3, 4 ... wait 1, 2, 4, 8 ... seconds."""
        assert [backoff_s(a) for a in range(1, 10)] == [1, 2, 4, 8, 16, 32, 64, 128, 256]

    def test_is_capped_at_five_minutes(self) -> None:
        """From attempt 10 (512 s uncapped) on, every wait is the 300 s cap."""
        assert [backoff_s(a) for a in (10, 11, 50)] == [300.0, 300.0, 300.0]

    def test_base_and_cap_can_be_chosen(self) -> None:
        """`base_s` scales the series and `cap_s` bounds it."""
        assert [backoff_s(a, base_s=0.5, cap_s=3.0) for a in range(1, 6)] == [
            0.5, 1.0, 2.0, 3.0, 3.0,
        ]  # fmt: skip

    def test_a_huge_attempt_number_gives_the_cap_without_overflow(self) -> None:
        """2**10_000 does not fit a float; the answer is still the cap."""
        assert backoff_s(10_000) == 300.0
        assert backoff_s(10_000, base_s=1e300, cap_s=7.0) == 7.0

    @pytest.mark.parametrize("attempt", [0, -1])
    def test_attempts_are_counted_from_one(self, attempt: int) -> None:
        """There is no attempt 0: a delivery is attempt 1 or later."""
        with pytest.raises(ValueError, match="counted from 1"):
            backoff_s(attempt)

    @pytest.mark.parametrize(("base_s", "cap_s"), [(-1.0, 300.0), (1.0, -1.0)])
    def test_negative_base_or_cap_is_refused(self, base_s: float, cap_s: float) -> None:
        """A negative wait is a mistake, not a wish for an immediate retry."""
        with pytest.raises(ValueError, match="must not be negative"):
            backoff_s(1, base_s=base_s, cap_s=cap_s)
