"""Background jobs: long work a form starts and a page then follows, one job per key at a time.

Some actions take longer than a browser or a proxy waits for one answer (sealing the clips of
several cameras, hashing every segment of the vault on a Pi). Their form starts a job and
redirects at once; the page polls the job as JSON (hub/web/static/jobs.js) for its steps and
its done/total count, then shows the result or the exact error. A second start of a key while
its job runs is refused with the caller's busy message. A job keeps only what the page shows
(its steps, counts, result and the text of an error): whatever its work held (an unlocked
identity) is let go when the work ends. CPU work runs in a worker thread (`in_thread`); closing
the board (the hub stopping) cancels every job and waits for its thread to stop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hub.errors import PorchlightError
from hub.timeutil import iso_second

log = logging.getLogger(__name__)
RUNNING, DONE, FAILED = "running", "done", "failed"
WAITING, ACTIVE, FINISHED, STOPPED = "waiting", "active", "done", "stopped"
HUB_STOPPED = "the hub stopped before this finished; nothing more was done"
UNEXPECTED = "this failed unexpectedly; the hub's log says why"


class JobBusy(PorchlightError):
    """A job with this key is running already."""


class JobStopped(PorchlightError):
    """The hub is stopping: the job's work ends where it is."""


@dataclass
class Step:
    """One step of a job, as the page shows it."""

    key: str
    label: str
    state: str = WAITING
    detail: str = ""


def working_line(job: Job) -> str:
    """Say where the job is: its active step, with the step's detail."""
    active = job.active
    if active is None:
        return ""
    return f"Working: {active.label}{f' ({active.detail})' if active.detail else ''}."


@dataclass
class Job:
    """What the page shows of a job: its steps and count, its state, its result or its error."""

    key: str
    steps: list[Step]
    started: datetime
    # What the starter says about the job (plain values the page shows, never a secret).
    about: dict = field(default_factory=dict)
    says: Callable[[Job], str] = working_line
    state: str = RUNNING
    error: str | None = None
    result: object = None
    done: int = 0
    total: int = 0
    finished: datetime | None = None
    # Every step the work reached, in order: what a page that polls too slowly still learns.
    history: list[str] = field(default_factory=list)
    # Reentrant: a page's line (`says`) may read the job's properties under the lock.
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def running(self) -> bool:
        """Say whether the job has not ended yet."""
        return self.state == RUNNING

    @property
    def active(self) -> Step | None:
        """Return the step the work is at, or None."""
        return next((s for s in self.steps if s.state == ACTIVE), None)

    @property
    def reached(self) -> str | None:
        """Return the key of the last step the work reached, or None."""
        with self._lock:
            return self.history[-1].split(" ", 1)[0] if self.history else None

    @property
    def line(self) -> str:
        """Say in one line where the running job is, as its page shows it ("" once it ended)."""
        with self._lock:
            return self.says(self) if self.state == RUNNING else ""

    def advance(self, key: str, detail: str = "") -> None:
        """Mark the step `key` active and every step before it done; safe from any thread."""
        with self._lock:
            keys = [s.key for s in self.steps]
            if key not in keys:
                raise ValueError(f"job {self.key} has no step {key!r}")
            at = keys.index(key)
            if self.steps[at].state != ACTIVE:
                self.done = self.total = 0  # a new step counts its own items
            for step in self.steps[:at]:
                step.state = FINISHED
            self.steps[at].state, self.steps[at].detail = ACTIVE, detail
            self.history.append(key if not detail else f"{key} {detail}")

    def count(self, done: int, total: int) -> None:
        """Record how far the active step is; raise JobStopped if the hub is stopping."""
        if self._stop.is_set():
            raise JobStopped(HUB_STOPPED)
        with self._lock:
            self.done, self.total = done, total

    @property
    def stopping(self) -> bool:
        """Say whether the hub asked this job to stop."""
        return self._stop.is_set()

    def _end(self, error: str | None, result: object, when: datetime) -> None:
        with self._lock:
            self.finished = when
            if error is None:
                self.state, self.result = DONE, result
                for step in self.steps:
                    step.state = FINISHED
            else:
                self.state, self.error = FAILED, error
                for step in self.steps:
                    if step.state == ACTIVE:
                        step.state = STOPPED

    def to_json(self) -> dict:
        """Return the job as the page's script reads it."""
        line = self.line
        with self._lock:
            return {"key": self.key, "state": self.state, "error": self.error,
                    "steps": [{"key": s.key, "label": s.label, "state": s.state,
                               "detail": s.detail} for s in self.steps],
                    "history": list(self.history), "done": self.done, "total": self.total,
                    "line": line, "started": iso_second(self.started),
                    "finished": iso_second(self.finished) if self.finished else None,
                    "result": self.result}


Work = Callable[[Job], Awaitable[object]]


def in_thread(work: Callable[[Job], object]) -> Work:
    """Wrap CPU work for a worker thread; on cancel, stop it at its next count and wait for it."""

    async def threaded(job: Job) -> object:
        future = asyncio.ensure_future(asyncio.to_thread(work, job))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            job._stop.set()
            # The thread cannot be cancelled: it stops at its next count(), and nothing it
            # holds outlives the job.
            await asyncio.gather(future, return_exceptions=True)
            raise

    return threaded


def _now() -> datetime:
    return datetime.now(UTC)


class JobBoard:
    """The jobs of one web app: at most one running per key, the last few finished kept to show."""

    def __init__(self, keep: int = 64, clock: Callable[[], datetime] = _now) -> None:
        self.keep = keep
        self.clock = clock
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.tasks: set[asyncio.Task] = set()

    def get(self, key: str) -> Job | None:
        """Return the job of a key, running or finished, or None."""
        return self.jobs.get(key)

    def running(self, key: str) -> bool:
        """Say whether a job with this key is running now."""
        job = self.jobs.get(key)
        return job is not None and job.running

    def start(self, key: str, steps: list[tuple[str, str]], work: Work, busy: str, *,
              about: dict | None = None, says: Callable[[Job], str] = working_line) -> Job:
        """Start `work(job)` as a named task; raise JobBusy with `busy` if the key is running."""
        if self.running(key):
            raise JobBusy(busy)
        job = Job(key, [Step(k, label) for k, label in steps], self.clock(), about=about or {},
                  says=says)
        self.jobs.pop(key, None)
        self.jobs[key] = job
        while len(self.jobs) > self.keep:
            oldest = next(iter(self.jobs))
            if self.jobs[oldest].running:
                break
            del self.jobs[oldest]
        task = asyncio.get_running_loop().create_task(self._run(job, work), name=f"job {key}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return job

    async def _run(self, job: Job, work: Work) -> None:
        error: str | None = None
        result = None
        try:
            result = await work(job)
        except JobStopped:
            error = HUB_STOPPED
        except PorchlightError as err:
            error = str(err)
        except asyncio.CancelledError:
            error = HUB_STOPPED
            raise
        except Exception:
            log.exception("job %s failed", job.key)
            error = UNEXPECTED
        finally:
            # Only the text of a failure is kept: its traceback would hold the work's frames,
            # and with them whatever the work held (an unlocked identity).
            del work
            job._end(error, result, self.clock())

    async def close(self) -> None:
        """Cancel the running jobs and wait for them (the hub is stopping)."""
        for job in self.jobs.values():
            job._stop.set()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
