"""When a schedule fires next: cron (5 or 6 fields, seconds first) in a time zone,
or a fixed interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

__all__ = ["next_fire"]


def next_fire(
    after: datetime, *, cron: str | None, interval_s: int | None, timezone: str = "UTC"
) -> datetime:
    """The first fire time strictly after `after` (aware UTC in, aware UTC out).

    Cron is evaluated in the schedule's time zone, so "0 9 * * *" in
    Europe/Paris is 9:00 Paris time on both sides of a DST change.
    """
    if interval_s is not None:
        return after + timedelta(seconds=interval_s)
    if cron is None:
        raise ValueError("a schedule needs cron or interval_s")
    local = after.astimezone(ZoneInfo(timezone))
    six_fields = len(cron.split()) == 6
    iterator = croniter(cron, local, second_at_beginning=six_fields)
    fire: datetime = iterator.get_next(datetime)
    return fire.astimezone(UTC)
