"""Dates and times, with time zones.

Inputs may be datetimes, dates, ISO 8601 text, RFC 2822 text (mail and HTTP
headers) or epoch seconds; text without an offset is read as UTC unless a zone
is given. Outputs stay datetimes (or dates, when a date went in and the
operation is calendar-only) until the result is rendered as ISO 8601. Nothing
here reads the clock: `now` and `today` come from the scope.

Adding seconds, minutes or hours moves the instant (across a DST change,
`add_hours(1)` is one real hour); adding days, weeks or months moves the wall
clock in the value's own zone (09:00 stays 09:00).
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from linkflow.engine.expressions._protocol import ExpressionError
from linkflow.engine.expressions.library._base import (
    Entry,
    Number,
    as_int,
    as_number,
    as_text,
    describe,
    iso_datetime,
    quoted,
)

__all__ = ["ENTRIES"]

_EPOCH_TEXT = re.compile(r"-?\d+(\.\d+)?")
_END_OF_DAY = time(23, 59, 59, 999_999)


def _zone(name: object) -> tzinfo:
    key = as_text(name)
    if key.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ExpressionError(f"unknown time zone {key!r}") from None


def _from_epoch(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ExpressionError(f"{seconds} is out of range for a timestamp") from None


def _parse_text(text: str) -> datetime:
    stripped = text.strip()
    if _EPOCH_TEXT.fullmatch(stripped):
        return _from_epoch(float(stripped))
    try:
        return datetime.fromisoformat(stripped)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(stripped)
    except (TypeError, ValueError, IndexError):
        raise ExpressionError(f"{quoted(text)} is not a date or time") from None


def to_datetime(value: object, tz: object = None) -> datetime:
    """A datetime from ISO or RFC 2822 text, epoch seconds, a date or a datetime.

    `tz` is the zone of inputs that carry no offset (default UTC); epoch
    numbers are instants and are shown in `tz` when given.
    """
    zone = UTC if tz is None else _zone(tz)
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(value).astimezone(zone)
    elif isinstance(value, str):
        parsed = _parse_text(value)
    else:
        raise ExpressionError(f"cannot read a date or time from {describe(value)}")
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed


def _calendar_value(value: object) -> date | datetime:
    """A date stays a date; anything else becomes a datetime."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return to_datetime(value)


def parse_datetime(value: object, format: object, tz: object = "UTC") -> datetime:
    """Read text with a strftime-style `format`; `tz` applies when it has no offset."""
    text, pattern = as_text(value), as_text(format)
    try:
        parsed = datetime.strptime(text, pattern)  # noqa: DTZ007 - the zone is added below
    except ValueError:
        raise ExpressionError(f"{quoted(text)} does not match the format {pattern!r}") from None
    return parsed.replace(tzinfo=_zone(tz)) if parsed.tzinfo is None else parsed


def format_datetime(
    value: object,
    format: object = "%Y-%m-%d %H:%M:%S",
    tz: object = None,
) -> str:
    """Format with strftime codes, after converting to zone `tz` when given."""
    moment = _calendar_value(value)
    if tz is not None:
        moment = to_datetime(moment).astimezone(_zone(tz))
    return moment.strftime(as_text(format))


def to_timezone(value: object, tz: object) -> datetime:
    """The same instant, seen in zone `tz` (e.g. "Europe/Paris")."""
    return to_datetime(value).astimezone(_zone(tz))


def _shift_instant(value: object, delta: timedelta) -> datetime:
    moment = to_datetime(value)
    try:
        return (moment.astimezone(UTC) + delta).astimezone(moment.tzinfo)
    except OverflowError:
        raise ExpressionError("the date is out of range") from None


def add_seconds(value: object, amount: object) -> datetime:
    """Add (or, negative, subtract) seconds."""
    return _shift_instant(value, timedelta(seconds=as_number(amount, "the amount")))


def add_minutes(value: object, amount: object) -> datetime:
    """Add (or, negative, subtract) minutes."""
    return _shift_instant(value, timedelta(minutes=as_number(amount, "the amount")))


def add_hours(value: object, amount: object) -> datetime:
    """Add (or, negative, subtract) hours."""
    return _shift_instant(value, timedelta(hours=as_number(amount, "the amount")))


def _shift_calendar(value: object, delta: timedelta) -> date | datetime:
    moment = _calendar_value(value)
    try:
        return moment + delta
    except OverflowError:
        raise ExpressionError("the date is out of range") from None


def add_days(value: object, amount: object) -> date | datetime:
    """Add calendar days; a date stays a date, a time of day stays the same."""
    return _shift_calendar(value, timedelta(days=as_number(amount, "the amount")))


def add_weeks(value: object, amount: object) -> date | datetime:
    """Add calendar weeks; a date stays a date."""
    return _shift_calendar(value, timedelta(weeks=as_number(amount, "the amount")))


def add_months(value: object, amount: object) -> date | datetime:
    """Add calendar months; the day is clamped to the month's length (Jan 31 + 1 → Feb 28)."""
    moment = _calendar_value(value)
    index = moment.year * 12 + moment.month - 1 + as_int(amount, "the amount")
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise ExpressionError("the date is out of range")
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _whole(number: float) -> Number:
    return int(number) if number.is_integer() else number


def diff_seconds(value: object, other: object) -> Number:
    """Seconds from `other` to `value` (positive when `value` is later)."""
    return _whole((to_datetime(value) - to_datetime(other)).total_seconds())


def diff_days(value: object, other: object) -> Number:
    """Days from `other` to `value`; whole days for two dates, fractional for datetimes."""
    first, second = _calendar_value(value), _calendar_value(other)
    if not isinstance(first, datetime) and not isinstance(second, datetime):
        return (first - second).days
    seconds = (to_datetime(first) - to_datetime(second)).total_seconds()
    return _whole(seconds / 86_400)


def start_of_day(value: object) -> datetime:
    """Midnight of the same day, in the value's zone."""
    moment = to_datetime(value)
    return datetime.combine(moment.date(), time(), moment.tzinfo)


def end_of_day(value: object) -> datetime:
    """The last microsecond of the same day, in the value's zone."""
    moment = to_datetime(value)
    return datetime.combine(moment.date(), _END_OF_DAY, moment.tzinfo)


def start_of_week(value: object) -> date | datetime:
    """Monday of the same ISO week (at midnight for a datetime)."""
    moment = _calendar_value(value)
    monday = moment - timedelta(days=moment.weekday())
    if isinstance(monday, datetime):
        return datetime.combine(monday.date(), time(), monday.tzinfo)
    return monday


def start_of_month(value: object) -> date | datetime:
    """The first day of the month (at midnight for a datetime)."""
    moment = _calendar_value(value)
    first = moment.replace(day=1)
    if isinstance(first, datetime):
        return datetime.combine(first.date(), time(), first.tzinfo)
    return first


def end_of_month(value: object) -> date | datetime:
    """The last day of the month (its last microsecond for a datetime)."""
    moment = _calendar_value(value)
    last = moment.replace(day=calendar.monthrange(moment.year, moment.month)[1])
    if isinstance(last, datetime):
        return datetime.combine(last.date(), _END_OF_DAY, last.tzinfo)
    return last


def weekday(value: object) -> int:
    """ISO weekday: 1 for Monday through 7 for Sunday."""
    return _calendar_value(value).isoweekday()


def is_weekend(value: object) -> bool:
    """Whether the day is a Saturday or a Sunday."""
    return weekday(value) >= 6


def to_date(value: object) -> date:
    """The calendar date, in the value's own zone."""
    moment = _calendar_value(value)
    return moment.date() if isinstance(moment, datetime) else moment


def to_iso(value: object) -> str:
    """ISO 8601 text ("Z" for UTC); a date gives YYYY-MM-DD."""
    moment = _calendar_value(value)
    return iso_datetime(moment) if isinstance(moment, datetime) else moment.isoformat()


def to_epoch(value: object) -> Number:
    """Seconds since 1970-01-01 UTC (fractional when there are microseconds)."""
    return _whole(to_datetime(value).timestamp())


def to_epoch_ms(value: object) -> int:
    """Milliseconds since 1970-01-01 UTC."""
    moment = to_datetime(value)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


ENTRIES = (
    Entry("to_datetime", to_datetime, function=True),
    Entry("parse_datetime", parse_datetime),
    Entry("format_datetime", format_datetime),
    Entry("to_timezone", to_timezone),
    Entry("add_seconds", add_seconds),
    Entry("add_minutes", add_minutes),
    Entry("add_hours", add_hours),
    Entry("add_days", add_days),
    Entry("add_weeks", add_weeks),
    Entry("add_months", add_months),
    Entry("diff_seconds", diff_seconds),
    Entry("diff_days", diff_days),
    Entry("start_of_day", start_of_day),
    Entry("end_of_day", end_of_day),
    Entry("start_of_week", start_of_week),
    Entry("start_of_month", start_of_month),
    Entry("end_of_month", end_of_month),
    Entry("weekday", weekday),
    Entry("is_weekend", is_weekend),
    Entry("to_date", to_date),
    Entry("to_iso", to_iso),
    Entry("to_epoch", to_epoch),
    Entry("to_epoch_ms", to_epoch_ms),
)
