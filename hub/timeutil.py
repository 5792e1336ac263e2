"""Times as the hub stores and prints them: ISO 8601 UTC with microseconds and a Z."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.errors import UsageError

_EXAMPLE = "2026-11-28T14:00:00Z"


def parse_time(text: str, what: str = "time") -> datetime:
    """Parse an ISO 8601 time; a time without an offset is taken as this machine's local time."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{what}: {text!r} is not an ISO 8601 time (example: {_EXAMPLE})"
        ) from None
    if value.tzinfo is None:
        value = value.astimezone()
    return value.astimezone(UTC)


def iso(value: datetime) -> str:
    """Format a datetime as sortable ISO 8601 UTC text (microseconds, Z suffix)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_second(value: datetime) -> str:
    """Format a datetime for people: ISO 8601 UTC to the second, with a Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str) -> datetime:
    """Read a time the hub itself stored."""
    return datetime.fromisoformat(text)


def utcnow() -> datetime:
    """Return the current time in UTC (the default clock)."""
    return datetime.now(UTC)


def check_window(start: datetime | None, end: datetime | None) -> None:
    """Refuse a time window whose start is after its end."""
    if start is not None and end is not None and start > end:
        raise UsageError(f"--from {iso_second(start)} is after --to {iso_second(end)}")
