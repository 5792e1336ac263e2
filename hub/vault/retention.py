"""Retention rules, pure and without I/O: what to delete, by age and by disk budget.

Oldest first, and never a segment under a hold (an approved agency request, or the owner's).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hub.words import plural


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep footage at most `max_age`, within `max_bytes`, leaving `min_free_fraction` of the disk."""

    max_age: timedelta | None = None
    max_bytes: int | None = None
    min_free_fraction: float | None = None

    @classmethod
    def from_config(cls, section) -> RetentionPolicy:
        """Build the policy from the config's [retention] section."""
        return cls(
            max_age=timedelta(days=section.max_age_days) if section.max_age_days else None,
            max_bytes=section.max_bytes,
            min_free_fraction=(section.min_free_percent / 100.0)
            if section.min_free_percent else None,
        )


@dataclass(frozen=True)
class SegmentInfo:
    """What retention needs to know of a segment."""

    id: str
    start: datetime
    end: datetime
    size: int
    held: bool = False


@dataclass(frozen=True)
class DiskUsage:
    """The filesystem under the vault: total and free bytes."""

    total: int
    free: int


@dataclass
class PrunePlan:
    """The segments to delete, why, and whether the budget is still exceeded by held footage."""

    delete: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    freed: int = 0
    still_over_budget: bool = False


def plan_prune(
    segments: Iterable[SegmentInfo],
    policy: RetentionPolicy,
    now: datetime,
    disk: DiskUsage | None = None,
) -> PrunePlan:
    """Decide which segments to delete: expired ones, then the oldest until the budget holds."""
    ordered = sorted(segments, key=lambda s: (s.end, s.start, s.id))
    plan = PrunePlan()
    used = sum(s.size for s in ordered)
    free = disk.free if disk is not None else None

    def drop(segment: SegmentInfo, reason: str) -> None:
        nonlocal used, free
        plan.delete.append(segment.id)
        plan.reasons[segment.id] = reason
        plan.freed += segment.size
        used -= segment.size
        if free is not None:
            free += segment.size

    deletable = [s for s in ordered if not s.held]
    if policy.max_age is not None:
        cutoff = now - policy.max_age
        for segment in deletable:
            if segment.end < cutoff:
                drop(segment, f"older than {_days(policy.max_age)}")

    def over_budget() -> bool:
        if policy.max_bytes is not None and used > policy.max_bytes:
            return True
        if policy.min_free_fraction is not None and disk is not None and free is not None:
            return free < policy.min_free_fraction * disk.total
        return False

    chosen = set(plan.delete)
    for segment in deletable:
        if not over_budget():
            break
        if segment.id not in chosen:
            drop(segment, "over the disk budget")
    plan.still_over_budget = over_budget()
    return plan


def _days(age: timedelta) -> str:
    days = age / timedelta(days=1)
    return plural(int(days), "day") if days == int(days) else f"{days:g} days"
