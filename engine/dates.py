"""UTC and window helpers: the one rule for a date window and the one way to make a UTC moment.

A window [since, until] is made of whole calendar days, both inclusive: since 00:00 UTC <= ts <
(until + 1 day) 00:00 UTC. Stored timestamps are UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta


def utc_now() -> datetime:
    """The current moment, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """An aware moment in UTC; a naive one is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of the day."""
    return datetime.combine(day, time(), tzinfo=UTC)


def window_end(until: date | None) -> date | None:
    """The first day after a window ending on `until` (inclusive), None for an open end."""
    return until + timedelta(days=1) if until is not None else None


def window_bounds(since: date | None,
                  until: date | None) -> tuple[datetime | None, datetime | None]:
    """[start, end) in UTC of the window [since, until]; None where it is open."""
    end = window_end(until)
    return (day_start(since) if since is not None else None,
            day_start(end) if end is not None else None)


def last_day(until: date | None, as_of: date | None) -> date | None:
    """The last day of a run's window: `until`, else the day before `as_of` (None for neither)."""
    if until is not None:
        return until
    return as_of - timedelta(days=1) if as_of is not None else None
