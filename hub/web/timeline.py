"""A camera's day on the recordings page: the day's bounds, the moments a person asks for, and
coverage, events and holds as spans of seconds from the day's start. Pure rules, no I/O.

A day is a calendar day in the hub's own time zone (the household's), so a DST day has 23 or
25 hours. Times a person types are read in that zone too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from hub.errors import UsageError

# Two recorded pieces closer than this are drawn as one span (segments meet at keyframes).
JOIN_GAP_S = 1.5
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}\Z", re.ASCII)
_CLOCK = re.compile(r"(\d{2}):(\d{2})(?::(\d{2}))?\Z", re.ASCII)


@dataclass(frozen=True)
class Day:
    """One calendar day in the hub's time zone, as UTC bounds."""

    date: date
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        """Return the day's length in seconds (86400, or 82800/90000 on a DST change)."""
        return (self.end - self.start).total_seconds()

    def offset(self, moment: datetime) -> float:
        """Return a moment as seconds from the day's start."""
        return (moment - self.start).total_seconds()

    def at(self, clock: str, what: str = "time") -> datetime:
        """Return the moment of an HH:MM[:SS] clock time on this day, in UTC."""
        match = _CLOCK.match(clock) if len(clock) <= 16 else None
        if match is None:
            raise UsageError(f"{what}: {clock[:16]!r} is not a time of day (example: 14:05:30)")
        hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise UsageError(f"{what}: {clock[:16]!r} is not a time of day (example: 14:05:30)")
        return _local(datetime.combine(self.date, time(hour, minute, second)))


def _local(naive: datetime) -> datetime:
    # A naive datetime's astimezone() reads it as this machine's local time, DST included.
    return naive.astimezone().astimezone(UTC)


def day_of(value: date) -> Day:
    """Return a calendar day's bounds in the hub's time zone."""
    start = _local(datetime.combine(value, time()))
    end = _local(datetime.combine(value + timedelta(days=1), time()))
    return Day(value, start, end)


def parse_day(text: str | None, today: date) -> Day:
    """Read a YYYY-MM-DD day from a query (today if absent); refuse anything else."""
    if not text:
        return day_of(today)
    if len(text) != 10 or not _DAY.match(text):
        raise UsageError(f"day: {text[:16]!r} is not a day (example: 2026-11-28)")
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"day: {text!r} is not a day on the calendar") from None
    if value.year < 2000 or value.year > 9998:
        raise UsageError(f"day: {text!r} is out of range")
    return day_of(value)


@dataclass(frozen=True)
class Span:
    """A stretch of a day, in seconds from its start."""

    start: float
    end: float


def merge_spans(pieces: list[tuple[float, float]], day_seconds: float,
                gap: float = JOIN_GAP_S) -> list[Span]:
    """Clip pieces to the day and merge those that overlap or nearly meet, in order."""
    spans: list[Span] = []
    for start, end in sorted(pieces):
        start, end = max(0.0, start), min(day_seconds, end)
        if end < start or end <= 0 or start >= day_seconds:
            continue
        if spans and start - spans[-1].end <= gap:
            if end > spans[-1].end:
                spans[-1] = Span(spans[-1].start, end)
        else:
            spans.append(Span(start, end))
    return spans


def clock_of(day: Day, seconds: float) -> str:
    """Return seconds from the day's start as the hub's local HH:MM:SS."""
    moment = (day.start + timedelta(seconds=seconds)).astimezone()
    return moment.strftime("%H:%M:%S")
