"""Vault upkeep the owner starts by hand while the hub runs (`footage check` and `footage prune`
from the web UI): one job at a time, in a worker thread, with its progress and its report.

A check hashes every segment, which takes minutes on a Pi, so it never runs inside an HTTP
request: the page starts a job and polls its state. Jobs take the vault maintenance lock, so
they never overlap the hub's own check and retention passes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from hub.errors import PorchlightError
from hub.timeutil import iso_second
from hub.vault.maintenance import apply_retention, plan_for_vault
from hub.vault.repair import check_decoding, check_vault
from hub.vault.retention import RetentionPolicy
from hub.vault.store import Vault

log = logging.getLogger(__name__)
KINDS = ("check", "prune")
# A report lists at most this many segments; the counts cover them all.
MAX_LISTED = 500
LOCK_POLL_S = 0.5


class JobBusy(PorchlightError):
    """A vault job is already running."""


class _Stopped(Exception):
    """The hub is stopping: the job ends where it is."""


@dataclass
class VaultJob:
    """One check or prune: its progress while it runs, then its report or its error."""

    kind: str
    dry_run: bool
    started: datetime
    decode: bool = False
    state: str = "waiting"  # waiting (for the hub's own pass), running, done, failed, stopped
    step: str = "check"  # check, then decode when asked (each counts its segments)
    done: int = 0
    total: int = 0
    report: dict = field(default_factory=dict)
    error: str | None = None
    finished: datetime | None = None

    @property
    def running(self) -> bool:
        """Say whether the job has not finished yet."""
        return self.state in ("waiting", "running")

    def as_json(self) -> dict:
        """Return the job's state for the page's poll."""
        return {"kind": self.kind, "dry_run": self.dry_run, "decode": self.decode,
                "step": self.step if self.kind == "check" else "prune", "state": self.state,
                "done": self.done, "total": self.total, "started": iso_second(self.started),
                "finished": iso_second(self.finished) if self.finished else None,
                "error": self.error, "report": self.report}


class VaultJobs:
    """Run the owner's vault jobs one at a time; keep the last one for the page."""

    def __init__(self, vault: Vault, policy: Callable[[], RetentionPolicy], clock,
                 lock: threading.Lock) -> None:
        self.vault = vault
        self.policy = policy
        self.clock = clock
        self.lock = lock
        self.current: VaultJob | None = None
        self.task: asyncio.Task | None = None
        self._stop = threading.Event()

    def start(self, kind: str, dry_run: bool = False, identity=None) -> VaultJob:
        """Start a check or a prune in a worker thread; refuse while one runs.

        With an identity, a check also decrypts and decodes every segment to its end
        (`footage check --decode`); the job drops the identity when it ends.
        """
        if kind not in KINDS:
            raise PorchlightError(f"no vault job named {kind!r}")
        if self.current is not None and self.current.running:
            what = "check" if self.current.kind == "check" else "prune"
            raise JobBusy(f"a vault {what} is already running (started "
                          f"{iso_second(self.current.started)}); wait for it to finish")
        job = VaultJob(kind, dry_run and kind == "prune", self.clock(),
                       decode=identity is not None and kind == "check")
        self.current = job
        self.task = asyncio.create_task(self._run(job, identity if job.decode else None),
                                        name=f"vault-{kind}")
        return job

    async def _run(self, job: VaultJob, identity) -> None:
        try:
            job.report = await asyncio.to_thread(self._work, job, identity)
            job.state = "done"
            log.info("vault %s done: %s", job.kind, _summary(job))
        except _Stopped:
            job.state = "stopped"
        except Exception as err:  # the page shows it; the hub goes on
            log.exception("vault %s failed", job.kind)
            job.state = "failed"
            job.error = str(err) or type(err).__name__
        finally:
            job.finished = self.clock()

    def _work(self, job: VaultJob, identity) -> dict:
        while not self.lock.acquire(timeout=LOCK_POLL_S):
            if self._stop.is_set():
                raise _Stopped
        try:
            job.state = "running"

            def tick(done: int, total: int) -> None:
                if self._stop.is_set():
                    raise _Stopped
                job.done, job.total = done, total

            if job.kind == "check":
                report = check_vault(self.vault, verify_hashes=True, progress=tick)
                unsealed: list[str] = []
                if identity is not None:
                    job.step = "decode"
                    report.repairs.extend(check_decoding(self.vault, identity, tick=tick,
                                                         unsealed=unsealed))
                return {"checked": report.checked, "clean": not report.repairs,
                        "repairs": [r.as_json() for r in report.repairs[:MAX_LISTED]],
                        "repair_count": len(report.repairs), "decoded": identity is not None,
                        "not_sealed_to_you": len(unsealed)}
            policy, now = self.policy(), self.clock()
            plan = plan_for_vault(self.vault, policy, now) if job.dry_run else \
                apply_retention(self.vault, policy, now, progress=tick)
            return {"deleted": len(plan.delete), "freed": plan.freed,
                    "reasons": [{"id": i, "reason": plan.reasons[i]}
                                for i in plan.delete[:MAX_LISTED]],
                    "still_over_budget": plan.still_over_budget}
        finally:
            self.lock.release()

    async def close(self) -> None:
        """Stop a running job at its next segment and wait for it (the hub is stopping)."""
        self._stop.set()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)


def _summary(job: VaultJob) -> str:
    if job.kind == "check":
        return f"{job.report['checked']} segments checked, {job.report['repair_count']} findings"
    return f"{job.report['deleted']} segments {'to delete' if job.dry_run else 'deleted'}"
