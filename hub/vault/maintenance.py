"""Vault upkeep: retention applied to the index, and the start-up crash check, as a service."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from hub.aio import cancel_and_wait
from hub.vault.disk import DiskWatch
from hub.vault.repair import check_vault, disk_usage
from hub.vault.retention import DiskUsage, PrunePlan, RetentionPolicy, SegmentInfo, plan_prune
from hub.vault.store import Vault

log = logging.getLogger(__name__)


def plan_for_vault(vault: Vault, policy: RetentionPolicy, now: datetime) -> PrunePlan:
    """Work out the prune plan for the vault as it is now."""
    return _plan(vault, policy, now)[0]


def apply_retention(vault: Vault, policy: RetentionPolicy, now: datetime,
                    progress: Callable[[int, int], None] | None = None) -> PrunePlan:
    """Delete what the retention plan says, logging each deletion.

    progress(done, total) is called after each deletion; an exception it raises stops there.
    """
    plan, by_id = _plan(vault, policy, now)
    for done, segment_id in enumerate(plan.delete, 1):
        vault.delete(by_id[segment_id])
        if progress is not None:
            progress(done, len(plan.delete))
    if plan.delete:
        log.info("retention deleted %d segments (%d bytes)", len(plan.delete), plan.freed)
    if plan.still_over_budget:
        log.warning("retention: still over the disk budget; what is left is under hold")
    return plan


def _plan(vault: Vault, policy: RetentionPolicy, now: datetime) -> tuple[PrunePlan, dict]:
    held = vault.held_ids()
    segments = {s.id: s for s in vault.segments()}
    infos = [SegmentInfo(s.id, s.start, s.end, s.size, s.id in held) for s in segments.values()]
    vault.data.vault.mkdir(parents=True, exist_ok=True)
    total, free = disk_usage(vault.data.vault)
    return plan_prune(infos, policy, now, DiskUsage(total, free)), segments


class VaultMaintenance:
    """Check the vault at start, then apply retention every interval, off the event loop."""

    def __init__(self, vault: Vault, policy: RetentionPolicy, interval_s: float, clock,
                 disk_watch: DiskWatch | None = None) -> None:
        self.vault = vault
        # Told after each retention pass whether the disk is nearly full (a `disk` event).
        self.disk_watch = disk_watch
        self.policy = policy
        self.interval_s = interval_s
        self.clock = clock
        self.task: asyncio.Task | None = None
        self.last_check = None
        # One upkeep pass at a time: this service's own, or a check or prune the owner starts
        # (hub.vault.upkeep); two at once would flag files the other is deleting.
        self.lock = threading.Lock()

    async def __aenter__(self) -> VaultMaintenance:
        # Cheap checks before serving (temp files, missing files, orphans); hashes in the loop.
        self.last_check = await asyncio.to_thread(check_vault, self.vault, verify_hashes=False)
        self.task = asyncio.create_task(self._loop(), name="vault-maintenance")
        return self

    async def __aexit__(self, *exc) -> None:
        await cancel_and_wait(self.task)

    async def _loop(self) -> None:
        self.last_check = await asyncio.to_thread(self._locked, check_vault, self.vault,
                                                  verify_hashes=True)
        while True:
            try:
                await asyncio.to_thread(self._locked, apply_retention, self.vault, self.policy,
                                        self.clock())
            except Exception:  # one bad pass must not stop retention for good
                log.exception("retention pass failed; trying again next interval")
            if self.disk_watch is not None:
                try:
                    await asyncio.to_thread(self.disk_watch.check_vault, self.vault)
                except Exception:  # a failed look at the disk must not stop retention
                    log.exception("disk check failed; trying again next interval")
            await asyncio.sleep(self.interval_s)

    def _locked(self, work, *args, **kwargs):
        with self.lock:
            return work(*args, **kwargs)
