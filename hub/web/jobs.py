"""Background jobs of the web UI: long work started by a form, run in the hub's event loop.

Some actions take longer than a browser or a proxy waits for one answer (sealing the clips of
several cameras on a Pi). Their form starts a job and redirects at once; the page then polls the
job's steps as JSON (hub/web/static/jobs.js) and shows the outcome or the exact error. One job
per key at a time: a second start while one runs is refused. A job keeps only what the page
shows (its steps, state and error text): whatever its work held (an unlocked identity) is let go
when the work ends, never kept with the job.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from hub.errors import PorchlightError

log = logging.getLogger(__name__)
RUNNING, DONE, FAILED = "running", "done", "failed"
WAITING, ACTIVE, FINISHED, STOPPED = "waiting", "active", "done", "stopped"


class JobBusy(PorchlightError):
    """A job with this key is running already."""


@dataclass
class Step:
    """One step of a job, as the page shows it."""

    key: str
    label: str
    state: str = WAITING
    detail: str = ""


@dataclass
class Job:
    """What the page shows of a job: its steps, its state and, if it failed, why."""

    key: str
    steps: list[Step]
    state: str = RUNNING
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    # Every step the work reached, in order: what a page that polls too slowly still learns.
    history: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def advance(self, key: str, detail: str = "") -> None:
        """Mark the step `key` active and every step before it done; safe from any thread."""
        with self._lock:
            keys = [s.key for s in self.steps]
            if key not in keys:
                raise ValueError(f"job {self.key} has no step {key!r}")
            at = keys.index(key)
            for step in self.steps[:at]:
                step.state = FINISHED
            self.steps[at].state, self.steps[at].detail = ACTIVE, detail
            self.history.append(key if not detail else f"{key} {detail}")

    def _end(self, error: str | None) -> None:
        with self._lock:
            self.finished = time.time()
            if error is None:
                self.state = DONE
                for step in self.steps:
                    step.state = FINISHED
            else:
                self.state, self.error = FAILED, error
                for step in self.steps:
                    if step.state == ACTIVE:
                        step.state = STOPPED

    def to_json(self) -> dict:
        """Return the job as the page's script reads it."""
        with self._lock:
            return {"key": self.key, "state": self.state, "error": self.error,
                    "steps": [{"key": s.key, "label": s.label, "state": s.state,
                               "detail": s.detail} for s in self.steps],
                    "history": list(self.history)}


Work = Callable[[Job], Awaitable[object]]


class JobBoard:
    """The jobs of one web app: at most one running per key, the last few finished kept to show."""

    def __init__(self, keep: int = 64) -> None:
        self.keep = keep
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.tasks: set[asyncio.Task] = set()

    def get(self, key: str) -> Job | None:
        """Return the job of a key, running or finished, or None."""
        return self.jobs.get(key)

    def running(self, key: str) -> bool:
        """Say whether a job with this key is running now."""
        job = self.jobs.get(key)
        return job is not None and job.state == RUNNING

    def start(self, key: str, steps: list[tuple[str, str]], work: Work, busy: str) -> Job:
        """Start `work(job)` as a named task; raise JobBusy with `busy` if the key is running."""
        if self.running(key):
            raise JobBusy(busy)
        job = Job(key, [Step(k, label) for k, label in steps])
        self.jobs.pop(key, None)
        self.jobs[key] = job
        while len(self.jobs) > self.keep:
            oldest = next(iter(self.jobs))
            if self.jobs[oldest].state == RUNNING:
                break
            del self.jobs[oldest]
        task = asyncio.get_running_loop().create_task(self._run(job, work), name=f"job {key}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return job

    async def _run(self, job: Job, work: Work) -> None:
        error: str | None = None
        try:
            await work(job)
        except PorchlightError as err:
            error = str(err)
        except asyncio.CancelledError:
            error = "the hub stopped before this finished; nothing more was done"
            raise
        except Exception:
            log.exception("web: job %s failed", job.key)
            error = "this failed unexpectedly; the hub's log says why"
        finally:
            # Only the text of a failure is kept: its traceback would hold the work's frames,
            # and with them whatever the work held (an unlocked identity).
            del work
            job._end(error)

    async def close(self) -> None:
        """Cancel the running jobs and wait for them (the hub is stopping)."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


JOBS = web.AppKey("jobs", JobBoard)


def setup(app: web.Application) -> None:
    """Give the app a job board, cancelled and awaited when the app shuts down."""
    app[JOBS] = JobBoard()

    async def stop(app: web.Application) -> None:
        await app[JOBS].close()

    app.on_shutdown.append(stop)
