"""Background jobs (hub/jobs.py), the one board behind the web UI's approvals and vault checks
and prunes: steps in order, done/total counts, one job per key at a time, the result or only
the failure's text kept, nothing the work held kept once it ends (in the loop or in a worker
thread), and every job stopped and awaited when the board closes."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from datetime import UTC, datetime

import pytest

from hub.errors import PorchlightError
from hub.jobs import JobBoard, JobBusy, in_thread

STEPS = [("cut:porch", "Cutting"), ("seal:porch", "Sealing"), ("upload", "Uploading")]


class Secret:
    """Stands for an unlocked identity: something the job must let go of when it ends."""


def _states(job) -> list[str]:
    return [s["state"] for s in job.to_json()["steps"]]


def _clock() -> datetime:
    return datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


async def test_steps_advance_in_order_and_a_second_start_is_refused():
    board = JobBoard(clock=_clock)
    gate = asyncio.Event()
    seen = []

    async def work(job):
        job.advance("cut:porch")
        seen.append(_states(job))
        # From a worker thread, as the approval's CPU work reports.
        await asyncio.to_thread(job.advance, "seal:porch", "porch")
        seen.append(_states(job))
        await gate.wait()
        job.advance("upload", "1 of 2")
        seen.append(_states(job))

    job = board.start("r1", STEPS, work, busy="being decided already")
    while len(seen) < 2:
        await asyncio.sleep(0.01)
    assert board.running("r1")
    with pytest.raises(JobBusy, match="^being decided already$"):
        board.start("r1", STEPS, work, busy="being decided already")
    # Another key is another job.
    other = board.start("r2", STEPS, _nothing, busy="x")
    gate.set()
    await asyncio.gather(*board.tasks)
    assert seen == [["active", "waiting", "waiting"], ["done", "active", "waiting"],
                    ["done", "done", "active"]]
    assert job.to_json() == {
        "key": "r1", "state": "done", "error": None,
        "steps": [{"key": "cut:porch", "label": "Cutting", "state": "done", "detail": ""},
                  {"key": "seal:porch", "label": "Sealing", "state": "done", "detail": "porch"},
                  {"key": "upload", "label": "Uploading", "state": "done", "detail": "1 of 2"}],
        "history": ["cut:porch", "seal:porch porch", "upload 1 of 2"], "done": 0, "total": 0,
        "line": "", "started": "2026-11-30T09:00:00Z", "finished": "2026-11-30T09:00:00Z",
        "result": None}
    assert other.state == "done" and not board.running("r1")


async def _nothing(job) -> None:
    return None


async def test_a_failure_keeps_its_exact_text_and_marks_where_it_stopped():
    board = JobBoard()

    async def work(job):
        job.advance("seal:porch", "porch")
        raise PorchlightError("the approval could not be delivered: gateway down; nothing was "
                              "answered, try again")

    job = board.start("r1", STEPS, work, busy="busy")
    await asyncio.gather(*board.tasks)
    assert job.state == "failed"
    assert job.error == ("the approval could not be delivered: gateway down; nothing was "
                         "answered, try again")
    assert _states(job) == ["done", "stopped", "waiting"]
    # A failed job does not block the next attempt.
    again = board.start("r1", STEPS, _nothing, busy="busy")
    await asyncio.gather(*board.tasks)
    assert again.state == "done" and board.get("r1") is again


@pytest.mark.parametrize("fails", [False, True])
@pytest.mark.parametrize("threaded", [False, True])
async def test_what_the_work_held_is_let_go_when_it_ends(fails, threaded):
    """In the loop (an approval) or in a worker thread (a vault check with its key)."""
    board = JobBoard()
    secret = Secret()
    held = weakref.ref(secret)

    def make_work(identity):
        def step(job):
            job.advance("cut:porch")
            job.count(1, 1)
            assert identity is not None
            if fails:
                raise PorchlightError("wrong")
            return {"ok": True}

        async def work(job):
            await asyncio.sleep(0)
            return step(job)
        return in_thread(step) if threaded else work

    job = board.start("r1", STEPS, make_work(secret), busy="busy")
    del secret
    await asyncio.gather(*board.tasks)
    gc.collect()
    assert job.state == ("failed" if fails else "done")
    assert held() is None, gc.get_referrers(held())


async def test_an_unexpected_error_is_logged_and_shown_without_its_traceback(caplog):
    board = JobBoard()

    async def work(job):
        raise RuntimeError("a bug")

    job = board.start("r1", STEPS, work, busy="busy")
    await asyncio.gather(*board.tasks)
    assert job.error == "this failed unexpectedly; the hub's log says why"
    assert "a bug" in caplog.text


async def test_closing_the_board_cancels_a_running_job():
    board = JobBoard()

    async def work(job):
        job.advance("upload")
        await asyncio.Event().wait()

    job = board.start("r1", STEPS, work, busy="busy")
    await asyncio.sleep(0.01)
    await board.close()
    assert job.state == "failed"
    assert job.error == "the hub stopped before this finished; nothing more was done"
    assert not board.tasks


async def test_work_in_a_thread_counts_its_items_and_keeps_its_result():
    board = JobBoard()
    lines = []

    def work(job):
        job.advance("cut:porch")
        for done in range(1, 4):
            job.count(done, 3)
            lines.append((job.done, job.total, job.line))
        job.advance("seal:porch")
        lines.append((job.done, job.total, job.line))  # a new step counts its own items
        return {"checked": 3}

    job = board.start("vault", STEPS, in_thread(work), busy="busy",
                      says=lambda j: f"{j.active.key}: {j.done} of {j.total}",
                      about={"kind": "check"})
    await asyncio.gather(*board.tasks)
    assert lines == [(1, 3, "cut:porch: 1 of 3"), (2, 3, "cut:porch: 2 of 3"),
                     (3, 3, "cut:porch: 3 of 3"), (0, 0, "seal:porch: 0 of 0")]
    assert (job.state, job.result, job.about) == ("done", {"checked": 3}, {"kind": "check"})
    assert job.to_json()["result"] == {"checked": 3}


async def test_closing_the_board_stops_thread_work_at_its_next_count_and_waits_for_it():
    board = JobBoard()
    counting, finished = threading.Event(), threading.Event()
    counts: list[int] = []

    def work(job):
        try:
            # CPU work that stops when told, at a count; bounded, so a board that never tells
            # it fails this test instead of hanging it.
            for _ in range(3000):
                job.count(1, 2)
                counts.append(1)
                counting.set()
                threading.Event().wait(0.01)
        finally:
            finished.set()

    job = board.start("vault", STEPS, in_thread(work), busy="busy")
    await asyncio.to_thread(counting.wait)
    await board.close()
    # The thread has ended before close returned: nothing runs on after the hub stops.
    assert finished.is_set() and len(counts) < 3000  # stopped at a count, not run out
    assert (job.state, job.error) == ("failed",
                                      "the hub stopped before this finished; nothing more was done")
    assert not board.tasks
