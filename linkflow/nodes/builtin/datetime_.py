"""The datetime node: parse, format, shift, compare and convert dates per item.

Time comes from `ctx.now()` only, so that a replay sees the same "now".
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo

from linkflow.nodes.builtin._common import Params, is_expression, set_path, timezone_problem
from linkflow.nodes.sdk import (
    Item,
    JsonObject,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    map_items,
)

__all__ = ["NODES", "DateTime", "add_months", "parse_datetime"]

OPERATIONS: Final = ("now", "format", "add", "subtract", "diff", "to_timezone", "parse")
UNITS: Final = ("seconds", "minutes", "hours", "days", "weeks", "months", "years")
_SECONDS_PER_UNIT: Final = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400,
                            "weeks": 604800}  # fmt: skip
EPOCH_MS_THRESHOLD: Final = 100_000_000_000
"""Epoch numbers at least this large are milliseconds: as seconds it is the year 5138,
as milliseconds March 1973, so real timestamps of either kind fall on the right side."""

# Parameters each operation needs beyond `operation` (checked when written, not per item).
_REQUIRED: Final = {
    "format": ("format",),
    "add": ("amount",),
    "subtract": ("amount",),
    "diff": ("other",),
    "to_timezone": ("timezone",),
}


class DateTime(Node):
    type = "datetime"
    display_name = "Date & Time"
    group = NodeGroup.ACTION
    description = (
        "Works with dates, per item, writing the result to `output_field`. Dates are read from "
        "ISO 8601 text (no offset means UTC) or epoch numbers (seconds, or milliseconds when "
        "at least 10^11); results are ISO 8601 text. `now`: the current time. "
        "`format`: the date as text by a strftime `format`. `add` / `subtract`: shift by "
        "`amount` `unit`s; months and years move the calendar date, clamped to the month's "
        "end (Jan 31 + 1 month = Feb 28/29). `diff`: `value` - `other` in `unit` (whole "
        "months or years for those units; a fraction otherwise). `to_timezone`: the same "
        "instant in `timezone`. `parse`: read `value` (with `format`, by strptime) and write "
        "it as ISO 8601. For operations that output a date, a given `timezone` converts it "
        "first."
    )
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "operation": {
                "type": "string",
                "enum": list(OPERATIONS),
                "description": "What to do.",
                "default": "now",
            },
            "value": {
                "type": ["string", "number"],
                "description": "The date: ISO 8601 text or epoch seconds/ms; default: now.",
            },
            "format": {
                "type": "string",
                "description": "format: strftime pattern, e.g. `%Y-%m-%d`; parse: strptime one.",
            },
            "amount": {
                "type": "number",
                "description": "add/subtract: how many units (whole for months and years).",
            },
            "unit": {
                "type": "string",
                "enum": list(UNITS),
                "description": "add/subtract/diff: the unit of `amount` or of the result.",
                "default": "days",
            },
            "other": {
                "type": ["string", "number"],
                "description": "diff: the date subtracted from `value`.",
            },
            "timezone": {
                "type": "string",
                "description": "IANA time zone, e.g. `Europe/Paris`; required by to_timezone.",
            },
            "output_field": {
                "type": "string",
                "description": "Dotted path where the result is written.",
                "default": "datetime",
            },
        },
        "required": [],
        "additionalProperties": False,
    }

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        operation = parameters.get("operation", "now")
        problems = [
            f"{name} is required when operation is {operation}"
            for name in _REQUIRED.get(operation, ())
            if parameters.get(name) is None
        ]
        timezone = parameters.get("timezone")
        if isinstance(timezone, str) and not is_expression(timezone):
            problems.extend(timezone_problem(timezone))
        return problems

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        operation = _OPERATIONS[params.text("operation")]

        def apply(item: Item, index: int) -> Item:
            result = operation(_Call(ctx, params, index))
            json = dict(item.json)
            set_path(json, params.text("output_field", index), result)
            return item.derive(json, index)

        return map_items(ctx, apply)


class _Call:
    """The parameters of one item's operation, read on demand."""

    def __init__(self, ctx: NodeContext, params: Params, index: int) -> None:
        self.ctx, self.params, self.index = ctx, params, index

    def date(self, name: str = "value", pattern: str | None = None) -> datetime:
        value = self.params.get(name, self.index)
        if value is None:
            return self.ctx.now()
        return parse_datetime(value, name, pattern)

    def unit(self) -> str:
        return self.params.text("unit", self.index)

    def zone(self) -> ZoneInfo | None:
        name = self.params.optional_text("timezone", self.index)
        if name is None:
            return None
        if timezone_problem(name):
            raise NodeError(f"parameter 'timezone': {name!r} is not an IANA time zone name")
        return ZoneInfo(name)

    def output(self, value: datetime) -> str:
        zone = self.zone()
        return (value.astimezone(zone) if zone is not None else value).isoformat()


def _now(call: _Call) -> str:
    return call.output(call.ctx.now())


def _format(call: _Call) -> str:
    value, zone = call.date(), call.zone()
    if zone is not None:
        value = value.astimezone(zone)
    return value.strftime(call.params.text("format", call.index))


def _parse(call: _Call) -> str:
    return call.output(call.date(pattern=call.params.optional_text("format", call.index)))


def _to_timezone(call: _Call) -> str:
    call.params.required("timezone", call.index)
    return call.output(call.date())


def _shift(sign: int) -> Callable[[_Call], str]:
    def shift(call: _Call) -> str:
        amount = call.params.number("amount", call.index) * sign
        return call.output(shift_by(call.date(), amount, call.unit()))

    return shift


def _diff(call: _Call) -> float:
    call.params.required("other", call.index)
    value, other = call.date(), call.date("other")
    unit = call.unit()
    if unit in ("months", "years"):
        months = _whole_months(value, other)
        return months if unit == "months" else int(months / 12)
    seconds = (value - other).total_seconds() / _SECONDS_PER_UNIT[unit]
    return int(seconds) if seconds.is_integer() else seconds


_OPERATIONS: Final[Mapping[str, Callable[[_Call], Any]]] = {
    "now": _now,
    "format": _format,
    "parse": _parse,
    "to_timezone": _to_timezone,
    "add": _shift(1),
    "subtract": _shift(-1),
    "diff": _diff,
}


def parse_datetime(value: Any, name: str = "value", pattern: str | None = None) -> datetime:
    """An aware datetime from ISO 8601 text, a strptime `pattern`, or epoch seconds/ms.

    Text without an offset is taken as UTC.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise NodeError(f"parameter '{name}' must be a date (ISO 8601 text or an epoch number)")
    if isinstance(value, str) and _is_number(value):
        value = float(value)
    if isinstance(value, int | float):
        return _from_epoch(value, name)
    try:
        parsed = datetime.strptime(value, pattern) if pattern else _from_iso(value)  # noqa: DTZ007
    except ValueError:
        expected = f"the format {pattern!r}" if pattern else "ISO 8601"
        raise NodeError(f"parameter '{name}': {value!r} is not a date in {expected}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.strip())


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _from_epoch(value: float, name: str) -> datetime:
    seconds = value / 1000 if abs(value) >= EPOCH_MS_THRESHOLD else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise NodeError(f"parameter '{name}': {value} is out of the range of dates") from None


def shift_by(value: datetime, amount: float, unit: str) -> datetime:
    """`value` moved by `amount` units; months and years by the calendar."""
    if unit in ("months", "years"):
        if not float(amount).is_integer():
            raise NodeError(f"parameter 'amount' must be a whole number of {unit}")
        months = int(amount) * (12 if unit == "years" else 1)
        return add_months(value, months)
    try:
        return value + timedelta(seconds=amount * _SECONDS_PER_UNIT[unit])
    except OverflowError:
        raise NodeError("parameter 'amount': the result is out of the range of dates") from None


def add_months(value: datetime, months: int) -> datetime:
    """Calendar arithmetic: the same day `months` later, clamped to the month's last day."""
    total = value.year * 12 + (value.month - 1) + months
    year, month = divmod(total, 12)
    if not 1 <= year <= 9999:
        raise NodeError("parameter 'amount': the result is out of the range of dates")
    day = min(value.day, calendar.monthrange(year, month + 1)[1])
    return value.replace(year=year, month=month + 1, day=day)


def _whole_months(value: datetime, other: datetime) -> int:
    """Whole calendar months from `other` to `value`, negative when `value` is earlier."""
    value = value.astimezone(other.tzinfo)
    sign = 1
    if value < other:
        value, other, sign = other, value, -1
    months = (value.year - other.year) * 12 + value.month - other.month
    if add_months(other, months) > value:
        months -= 1
    return sign * months


NODES: tuple[type[Node], ...] = (DateTime,)
