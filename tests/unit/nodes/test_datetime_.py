"""The datetime node works with dates per item, using only the recorded time."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.nodes._support import NODE, NOW, node_problems, run_node


async def _one(parameters: dict[str, Any], item: dict[str, Any] | None = None) -> Any:
    """Run the node over one item and return what it wrote to `datetime`."""
    result = await run_node("datetime", parameters, [item or {}])
    assert result.status == "completed", result.error
    return result.output_of(NODE)[0]["datetime"]


class TestNowAndParse:
    async def test_now_is_the_recorded_time_in_iso_8601(self) -> None:
        """`now` is `ctx.now()`, never the system clock."""
        assert await _one({"operation": "now"}) == NOW.isoformat()

    async def test_now_in_a_time_zone(self) -> None:
        """A timezone converts the result."""
        assert (
            await _one({"operation": "now", "timezone": "Asia/Tokyo"})
            == "2024-01-31T21:00:00+09:00"
        )

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2024-03-01T10:00:00+02:00", "2024-03-01T10:00:00+02:00"),
            ("2024-03-01T10:00:00Z", "2024-03-01T10:00:00+00:00"),
            ("2024-03-01 10:00", "2024-03-01T10:00:00+00:00"),
            ("2024-03-01", "2024-03-01T00:00:00+00:00"),
            (1709287200, "2024-03-01T10:00:00+00:00"),
            (1709287200500, "2024-03-01T10:00:00.500000+00:00"),
            ("1709287200", "2024-03-01T10:00:00+00:00"),
        ],
    )
    async def test_parse_reads_iso_text_and_epoch_numbers(self, value: Any, expected: str) -> None:
        """ISO 8601 (no offset = UTC), epoch seconds, epoch milliseconds."""
        assert await _one({"operation": "parse", "value": value}) == expected

    async def test_parse_with_a_format_uses_strptime(self) -> None:
        """A custom format reads other layouts."""
        parameters = {"operation": "parse", "value": "31/12/2023 23:59", "format": "%d/%m/%Y %H:%M"}
        assert await _one(parameters) == "2023-12-31T23:59:00+00:00"

    async def test_the_value_may_come_from_the_item(self) -> None:
        """Per item: `value` is an expression over the item."""
        result = await run_node(
            "datetime", {"operation": "parse", "value": "{{ json.at }}"}, [{"at": 0}, {"at": 86400}]
        )
        assert [i["datetime"] for i in result.output_of(NODE)] == [
            "1970-01-01T00:00:00+00:00", "1970-01-02T00:00:00+00:00",
        ]  # fmt: skip

    async def test_an_unreadable_date_fails_naming_the_parameter(self) -> None:
        """The message names `value` and the text."""
        result = await run_node("datetime", {"operation": "parse", "value": "yesterday"}, [{}])
        assert result.status == "failed"
        assert result.error is not None
        assert result.error["message"] == "parameter 'value': 'yesterday' is not a date in ISO 8601"


class TestFormatAndConvert:
    async def test_format_writes_the_date_with_strftime(self) -> None:
        """`format` uses strftime codes."""
        parameters = {
            "operation": "format",
            "value": "2024-03-01T10:05:00Z",
            "format": "%d.%m.%Y %H:%M",
        }
        assert await _one(parameters) == "01.03.2024 10:05"

    async def test_format_in_a_time_zone_converts_first(self) -> None:
        """The wall-clock time of the zone is formatted."""
        parameters = {"operation": "format", "value": "2024-03-01T10:05:00Z", "format": "%H:%M",
                      "timezone": "America/New_York"}  # fmt: skip
        assert await _one(parameters) == "05:05"

    async def test_to_timezone_keeps_the_instant(self) -> None:
        """The same instant, written with the zone's offset (DST-aware)."""
        parameters = {
            "operation": "to_timezone",
            "value": "2024-07-01T12:00:00Z",
            "timezone": "Europe/Paris",
        }
        assert await _one(parameters) == "2024-07-01T14:00:00+02:00"

    async def test_output_field_names_where_the_result_goes(self) -> None:
        """A dotted output field nests; the item's other fields stay."""
        parameters = {"operation": "now", "output_field": "meta.seen_at"}
        result = await run_node("datetime", parameters, [{"id": 1}])
        assert result.output_of(NODE) == [{"id": 1, "meta": {"seen_at": NOW.isoformat()}}]


class TestShift:
    @pytest.mark.parametrize(
        ("amount", "unit", "expected"),
        [
            (90, "seconds", "2024-01-31T12:01:30+00:00"),
            (15, "minutes", "2024-01-31T12:15:00+00:00"),
            (1.5, "hours", "2024-01-31T13:30:00+00:00"),
            (1, "days", "2024-02-01T12:00:00+00:00"),
            (2, "weeks", "2024-02-14T12:00:00+00:00"),
            (1, "months", "2024-02-29T12:00:00+00:00"),
            (2, "months", "2024-03-31T12:00:00+00:00"),
            (1, "years", "2025-01-31T12:00:00+00:00"),
        ],
    )
    async def test_add_moves_forward_by_the_unit(
        self, amount: float, unit: str, expected: str
    ) -> None:
        """Months move the calendar date, clamped to the month's end (Jan 31 + 1 month = Feb 29)."""
        assert await _one({"operation": "add", "amount": amount, "unit": unit}) == expected

    async def test_subtract_moves_backward(self) -> None:
        """Mar 31 - 1 month = Feb 29 in a leap year."""
        parameters = {
            "operation": "subtract",
            "value": "2024-03-31T00:00:00Z",
            "amount": 1,
            "unit": "months",
        }
        assert await _one(parameters) == "2024-02-29T00:00:00+00:00"

    async def test_a_fraction_of_a_month_is_refused(self) -> None:
        """Calendar units need whole numbers."""
        result = await run_node(
            "datetime", {"operation": "add", "amount": 1.5, "unit": "months"}, [{}]
        )
        assert result.error is not None
        assert result.error["message"] == "parameter 'amount' must be a whole number of months"


class TestDiff:
    @pytest.mark.parametrize(
        ("other", "unit", "expected"),
        [
            ("2024-01-31T11:00:00Z", "hours", 1),
            ("2024-01-31T11:30:00Z", "hours", 0.5),
            ("2024-01-30T12:00:00Z", "minutes", 1440),
            ("2024-02-01T12:00:00Z", "days", -1),
            ("2023-11-30T12:00:00Z", "months", 2),
            ("2023-12-01T12:00:00Z", "months", 1),
            ("2022-02-01T00:00:00Z", "years", 1),
        ],
    )
    async def test_diff_is_value_minus_other_in_the_unit(
        self, other: str, unit: str, expected: float
    ) -> None:
        """`value` (default now) minus `other`; whole calendar months and years."""
        assert await _one({"operation": "diff", "other": other, "unit": unit}) == expected

    async def test_diff_of_two_given_dates(self) -> None:
        """Both dates may be given."""
        parameters = {
            "operation": "diff",
            "value": "2024-01-02",
            "other": "2024-01-01",
            "unit": "seconds",
        }
        assert await _one(parameters) == 86400


class TestCheck:
    @pytest.mark.parametrize(
        ("parameters", "missing"),
        [
            ({"operation": "format"}, "format"),
            ({"operation": "add"}, "amount"),
            ({"operation": "subtract"}, "amount"),
            ({"operation": "diff"}, "other"),
            ({"operation": "to_timezone"}, "timezone"),
        ],
    )
    def test_each_operation_needs_its_parameters(
        self, parameters: dict[str, Any], missing: str
    ) -> None:
        """Missing operation parameters are named before the run."""
        assert node_problems("datetime", parameters) == [
            f"{missing} is required when operation is {parameters['operation']}"
        ]

    def test_an_unknown_time_zone_is_refused(self) -> None:
        """Time zones are IANA names."""
        found = node_problems("datetime", {"operation": "to_timezone", "timezone": "Nowhere/City"})
        assert len(found) == 1
        assert "Nowhere/City" in found[0]

    def test_unknown_units_are_refused(self) -> None:
        """Only the listed units exist."""
        assert (
            node_problems("datetime", {"operation": "add", "amount": 1, "unit": "fortnights"}) != []
        )
