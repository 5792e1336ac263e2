"""Pure rules of motion-only recording: which closed segments to keep for pre- and post-roll."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Interval:
    """A stretch of motion; `end` is None while it lasts."""

    start: datetime
    end: datetime | None = None


def segment_needed(start: datetime, end: datetime, motion: list[Interval],
                   pre_roll: timedelta, post_roll: timedelta) -> bool:
    """Tell whether a segment overlaps any motion widened by the pre- and post-roll."""
    for interval in motion:
        last = None if interval.end is None else interval.end + post_roll
        if end >= interval.start - pre_roll and (last is None or start <= last):
            return True
    return False


def segment_expired(end: datetime, now: datetime, pre_roll: timedelta) -> bool:
    """Tell whether no motion starting from now on could still need a segment for its pre-roll."""
    return end < now - pre_roll
