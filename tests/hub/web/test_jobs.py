"""The web UI's background jobs (hub/web/jobs.py): steps in order, one job per key at a time,
the failure's text kept word for word, and nothing the work held kept once it ends."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from hub.errors import PorchlightError
from hub.web.jobs import JobBoard, JobBusy

STEPS = [("cut:porch", "Cutting"), ("seal:porch", "Sealing"), ("upload", "Uploading")]


class Secret:
    """Stands for an unlocked identity: something the job must let go of when it ends."""


def _states(job) -> list[str]:
    return [s["state"] for s in job.to_json()["steps"]]


async def test_steps_advance_in_order_and_a_second_start_is_refused():
    board = JobBoard()
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
        "history": ["cut:porch", "seal:porch porch", "upload 1 of 2"]}
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
async def test_what_the_work_held_is_let_go_when_it_ends(fails):
    board = JobBoard()
    secret = Secret()
    held = weakref.ref(secret)

    def make_work(identity):
        async def work(job):
            job.advance("cut:porch")
            await asyncio.sleep(0)
            assert identity is not None
            if fails:
                raise PorchlightError("wrong")
        return work

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
