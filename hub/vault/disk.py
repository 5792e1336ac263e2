"""The disk nearly full: a pure rule, and a watch that tells of each crossing once.

"Nearly full" is free space on the vault's filesystem under a percent of the disk, or the vault
over a percent of its retention quota (retention.max_bytes). Retention deletes old footage
at retention.min_free_percent; this warns before, while there is still room to act.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hub.vault.repair import disk_usage
from hub.vault.store import Vault

GB = 10**9


@dataclass(frozen=True)
class DiskThresholds:
    """Where the disk counts as nearly full."""

    free_percent: float
    quota_percent: float
    max_bytes: int | None


def nearly_full(total: int, free: int, used: int, limits: DiskThresholds) -> str | None:
    """Say why the disk is nearly full, or None if it is not."""
    if total > 0 and free * 100.0 / total < limits.free_percent:
        return (f"{free / GB:.1f} GB free of {total / GB:.1f} GB "
                f"({free * 100.0 / total:.1f}%, under {limits.free_percent:g}%)")
    if limits.max_bytes and used * 100.0 / limits.max_bytes >= limits.quota_percent:
        return (f"the vault holds {used / GB:.1f} GB of its {limits.max_bytes / GB:.1f} GB "
                f"quota ({used * 100.0 / limits.max_bytes:.0f}%)")
    return None


class DiskWatch:
    """Check the vault's disk and emit a `disk` event each time it crosses the line, either way."""

    def __init__(self, limits: DiskThresholds, emit: Callable[[dict], None]) -> None:
        self.limits = limits
        self.emit = emit
        self.low = False

    def check(self, total: int, free: int, used: int) -> dict | None:
        """Compare with the last check; emit and return the event if the state changed."""
        why = nearly_full(total, free, used, self.limits)
        if (why is not None) == self.low:
            return None
        self.low = why is not None
        event = {"kind": "disk", "state": "low" if self.low else "ok", "free": free,
                 "total": total, "used": used,
                 "summary": f"disk nearly full: {why}" if self.low else "disk space is fine again"}
        self.emit(event)
        return event

    def check_vault(self, vault: Vault) -> dict | None:
        """Measure the vault's filesystem and its size, then check."""
        vault.data.vault.mkdir(parents=True, exist_ok=True)
        total, free = disk_usage(vault.data.vault)
        used = vault.db.execute("select coalesce(sum(size), 0) from segments").fetchone()[0]
        return self.check(total, free, used)
