"""Vault upkeep the owner starts by hand while the hub runs (`footage check` and `footage prune`
from the web UI), as a job of the hub's job board (hub.jobs), in a worker thread, with its
progress and its report.

A check hashes every segment, which takes minutes on a Pi, so it never runs inside an HTTP
request. The work takes the vault maintenance lock, so it never overlaps the hub's own check
and retention passes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from hub.errors import PorchlightError
from hub.jobs import Job, JobBoard, in_thread
from hub.timeutil import iso_second
from hub.vault.maintenance import apply_retention, plan_for_vault
from hub.vault.repair import check_decoding, check_vault
from hub.vault.retention import RetentionPolicy
from hub.vault.store import Vault

log = logging.getLogger(__name__)
KEY = "vault"
KINDS = ("check", "prune")
WAIT = "wait"
WAITING_LINE = "waiting for the hub's own upkeep pass"
# A report lists at most this many segments; the counts cover them all.
MAX_LISTED = 500
LOCK_POLL_S = 0.5


def upkeep_steps(kind: str, dry_run: bool, decode: bool) -> list[tuple[str, str]]:
    """Return the steps of a check or a prune as (key, label)."""
    steps = [(WAIT, "Waiting for the hub's own upkeep pass")]
    if kind == "check":
        steps.append(("check", "Hashing every segment"))
        if decode:
            steps.append(("decode", "Decoding every segment"))
    else:
        steps.append(("prune", "Finding what retention deletes" if dry_run else
                      "Deleting what retention no longer keeps"))
    return steps


def upkeep_line(job: Job) -> str:
    """Say where a check or a prune is, as the Settings page shows it."""
    active = job.active
    if active is None or active.key == WAIT:
        return WAITING_LINE
    return f"{'decoding: ' if active.key == 'decode' else ''}{job.done} of {job.total} segments"


class VaultUpkeep:
    """Start the owner's checks and prunes on a job board, one at a time."""

    def __init__(self, board: JobBoard, vault: Vault, policy: Callable[[], RetentionPolicy],
                 clock, lock: threading.Lock) -> None:
        self.board = board
        self.vault = vault
        self.policy = policy
        self.clock = clock
        self.lock = lock

    @property
    def current(self) -> Job | None:
        """Return the running or the last vault job, or None."""
        return self.board.get(KEY)

    def start(self, kind: str, dry_run: bool = False, identity=None) -> Job:
        """Start a check or a prune in a worker thread; raise JobBusy while one runs.

        With an identity, a check also decrypts and decodes every segment to its end
        (`footage check --decode`); the job drops the identity when it ends.
        """
        if kind not in KINDS:
            raise PorchlightError(f"no vault job named {kind!r}")
        dry_run, decode = dry_run and kind == "prune", identity is not None and kind == "check"
        busy = ""
        if (running := self.current) is not None and running.running:
            busy = (f"a vault {running.about['kind']} is already running (started "
                    f"{iso_second(running.started)}); wait for it to finish")
        work = self._work(kind, dry_run, identity if decode else None)
        return self.board.start(KEY, upkeep_steps(kind, dry_run, decode), in_thread(work), busy,
                                about={"kind": kind, "dry_run": dry_run, "decode": decode},
                                says=upkeep_line)

    def _work(self, kind: str, dry_run: bool, identity) -> Callable[[Job], dict]:
        def work(job: Job) -> dict:
            nonlocal identity
            job.advance(WAIT)
            while not self.lock.acquire(timeout=LOCK_POLL_S):
                job.count(0, 0)  # stops here if the hub is stopping
            try:
                report = self._check(job, identity) if kind == "check" else \
                    self._prune(job, dry_run)
                log.info("vault %s done: %s", kind, _summary(kind, dry_run, report))
                return report
            finally:
                identity = None  # the job ends here: the owner's key goes with it
                self.lock.release()
        return work

    def _check(self, job: Job, identity) -> dict:
        job.advance("check")
        report = check_vault(self.vault, verify_hashes=True, progress=job.count)
        unsealed: list[str] = []
        if identity is not None:
            job.advance("decode")
            report.repairs.extend(check_decoding(self.vault, identity, tick=job.count,
                                                 unsealed=unsealed))
        return {"checked": report.checked, "clean": not report.repairs,
                "repairs": [r.as_json() for r in report.repairs[:MAX_LISTED]],
                "repair_count": len(report.repairs), "decoded": identity is not None,
                "not_sealed_to_you": len(unsealed)}

    def _prune(self, job: Job, dry_run: bool) -> dict:
        job.advance("prune")
        policy, now = self.policy(), self.clock()
        plan = plan_for_vault(self.vault, policy, now) if dry_run else \
            apply_retention(self.vault, policy, now, progress=job.count)
        return {"deleted": len(plan.delete), "freed": plan.freed,
                "reasons": [{"id": i, "reason": plan.reasons[i]}
                            for i in plan.delete[:MAX_LISTED]],
                "still_over_budget": plan.still_over_budget}


def upkeep_json(job: Job | None) -> dict | None:
    """Return a vault job as the page's poll reads it: the job, what it is and its report."""
    if job is None:
        return None
    reached = job.reached
    return dict(job.to_json(), **job.about, report=job.result or {},
                step=reached if reached not in (None, WAIT) else job.about["kind"])


def _summary(kind: str, dry_run: bool, report: dict) -> str:
    if kind == "check":
        return f"{report['checked']} segments checked, {report['repair_count']} findings"
    return f"{report['deleted']} segments {'to delete' if dry_run else 'deleted'}"
