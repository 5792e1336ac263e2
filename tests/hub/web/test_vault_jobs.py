"""The vault's check and prune in Settings, against a real `porchlight run`: each runs as a
background job (never inside the HTTP request), its progress is polled from a small JSON
endpoint, its report is listed when done, and a second start while one runs is refused with
the exact message. Only an owner may start one, and only with the session's CSRF token.

A named pipe dropped in the vault holds the check at its scan for unindexed files (opening it
blocks until someone writes to it), so the test sees the job running without racing a clock."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from markupsafe import escape

from hub.datadir import DataDir
from hub.db import connect
from hub.vault.store import Vault
from tests.hub.web.conftest import (
    FORGED,
    PASSPHRASE,
    VIEWER,
    VIEWER_PASS,
    WebHub,
    add_viewer,
    csrf_of,
    porchlight,
    run_async,
    sign_in,
)

OLD = "2020-01-01T00:00:00+00:00"


def _segments(root: Path) -> list:
    db = connect(root / "porchlight.db")
    try:
        return Vault(DataDir(root), db, []).segments("porch")
    finally:
        db.conn.close()


def _wait_for(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture(scope="module")
def vault_hub(tmp_path_factory, clip25):
    """A running hub whose first retention pass has run (so its own upkeep sleeps for an hour),
    with 25 s of `porch` from yesterday and a viewer."""
    root = tmp_path_factory.mktemp("vaultjobs") / "maple"
    hub = WebHub(root, cameras=())
    porchlight("camera", "add", "--data", root, "porch", "--rtsp", "rtsp://127.0.0.1:9/none",
               "--no-analysis")
    yesterday = datetime.now().astimezone().replace(microsecond=0) - timedelta(days=1)
    porchlight("footage", "import", "--data", root, "--camera", "porch", "--start",
               yesterday.isoformat(), clip25)
    # Footage past retention: the hub's own first pass deletes it, which says in the log that
    # the pass (after the hub's own full check) is over.
    porchlight("footage", "import", "--data", root, "--camera", "porch", "--start", OLD, clip25)
    hub.start()
    _wait_for(lambda: any("retention deleted" in line for line in hub.log),
              "the hub's first retention pass")
    run_async(add_viewer(hub, VIEWER, VIEWER_PASS))
    yield hub
    hub.stop()
    assert "Traceback" not in "".join(hub.log), "".join(hub.log)[-4000:]


async def _job(client) -> dict | None:
    async with client.get("/settings/vault/job") as reply:
        assert reply.status == 200
        return await reply.json()


async def _until(client, check, what: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = await _job(client)
        if job is not None and check(job):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}: {await _job(client)}")


def test_a_viewer_and_a_forged_form_cannot_start_a_job(vault_hub):
    run_async(_refused(vault_hub))


async def _refused(hub: WebHub) -> None:
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        before = await _job(owner)
        for kind in ("check", "prune"):
            async with owner.post(f"/settings/vault/{kind}", data={}) as r:
                assert (r.status, await r.text()) == (403, FORGED)
        async with hub.client() as viewer:
            assert (await sign_in(viewer, VIEWER, VIEWER_PASS)).status == 303
            token = await csrf_of(viewer, "/")
            for kind in ("check", "prune"):
                async with viewer.post(f"/settings/vault/{kind}", data={"csrf": token}) as r:
                    assert (r.status, await r.text()) == (403, "only an owner may do this")
            async with viewer.get("/settings/vault/job") as r:
                assert (r.status, await r.text()) == (403, "only an owner may do this")
        assert await _job(owner) == before


def test_check_runs_as_a_job_with_progress_and_reports_every_repair(vault_hub):
    hub = vault_hub
    indexed = _segments(hub.root)
    missing = indexed[0]
    (hub.root / missing.path).unlink()
    leftover = hub.root / "vault" / ".tmp" / "0123abcd.tmp"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half a segment")
    pipe = hub.root / "vault" / "porch" / "stuck.fifo"
    os.mkfifo(pipe)
    try:
        run_async(_check(hub, len(indexed), missing, pipe))
    finally:
        if pipe.exists():  # unblock a check the test gave up on, so the hub can stop
            with open(pipe, "wb"):
                pass


async def _check(hub: WebHub, count: int, missing, pipe: Path) -> None:
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/settings")
        async with owner.post("/settings/vault/check", data={"csrf": token},
                              allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (303, "/settings#vault-h")
        # Every indexed segment hashed; now held at the pipe by the scan for unindexed files.
        job = await _until(owner, lambda j: j["state"] == "running" and j["done"] == count,
                           "the check to reach the pipe")
        assert (job["kind"], job["total"], job["report"]) == ("check", count, {})
        async with owner.get("/settings") as page:
            text = await page.text()
        assert 'data-running="yes"' in text and "/static/jobs.js" in text
        assert f'<progress id="vault-progress" max="{count}" value="{count}"' in text
        assert f"{count} of {count} segments" in text

        before = [s.id for s in _segments(hub.root)]
        for kind in ("check", "prune"):
            async with owner.post(f"/settings/vault/{kind}", data={"csrf": token}) as r:
                assert r.status == 409
                text = await r.text()
            message = (f"a vault check is already running (started {job['started']}); "
                       "wait for it to finish")
            assert f'<p class="error" role="alert">{escape(message)}</p>' in text
        assert [s.id for s in _segments(hub.root)] == before

        threading.Thread(target=pipe.write_bytes, args=(b"not a segment",)).start()
        job = await _until(owner, lambda j: j["state"] == "done", "the check to finish")
        report = job["report"]
        assert report["checked"] == count and report["clean"] is False
        found = {(r["action"], r["path"]) for r in report["repairs"]}
        assert found == {("removed-temp", "vault/.tmp/0123abcd.tmp"),
                         ("flagged-missing", missing.path),
                         ("quarantined", "vault/porch/stuck.fifo")}
        assert report["repair_count"] == 3
        async with owner.get("/settings") as page:
            text = await page.text()
        assert 'data-running="yes"' not in text
        assert f"{count} segments checked, 3 findings:" in text
        for action, path in found:
            assert f"<strong>{action}</strong>: <code>{path}</code>" in text
    assert not pipe.exists() and (hub.root / "quarantine" / "vault" / "porch" / "stuck.fifo"
                                  ).exists()


def test_prune_runs_as_a_job_dry_run_first(vault_hub):
    hub = vault_hub
    # Footage past retention, sealed while the hub runs (its own pass sleeps for an hour).
    porchlight("footage", "import", "--data", hub.root, "--camera", "porch", "--start",
               "2020-02-01T00:00:00+00:00", _clip(hub))
    old = [s for s in _segments(hub.root) if s.start.year == 2020]
    assert old
    run_async(_prune(hub, old))


def _clip(hub: WebHub) -> Path:
    from plugins.cameras.scene import write_clip

    path = hub.root.parent / "old.mp4"
    if not path.exists():
        write_clip(path, seconds=12.0, fps=15)
    return path


async def _prune(hub: WebHub, old: list) -> None:
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/settings")
        async with owner.post("/settings/vault/prune", data={"csrf": token, "dry_run": "yes"},
                              allow_redirects=False) as r:
            assert r.status == 303
        job = await _until(owner, lambda j: j["state"] == "done", "the dry run")
        assert (job["kind"], job["dry_run"], job["report"]["deleted"]) == ("prune", True, len(old))
        assert sorted(r["id"] for r in job["report"]["reasons"]) == sorted(s.id for s in old)
        assert all((hub.root / s.path).exists() for s in old)
        assert {s.id for s in old} <= {s.id for s in _segments(hub.root)}
        async with owner.get("/settings") as page:
            text = await page.text()
        assert re.search(rf"Prune \(dry run\) finished [0-9:]+ UTC: would delete {len(old)} "
                         r"segments \(\d+ bytes\)\.", text)

        async with owner.post("/settings/vault/prune", data={"csrf": token},
                              allow_redirects=False) as r:
            assert r.status == 303
        job = await _until(owner, lambda j: j["state"] == "done" and not j["dry_run"],
                           "the prune")
        assert job["report"]["deleted"] == len(old) and job["done"] == len(old)
        assert not any((hub.root / s.path).exists() for s in old)
        assert not {s.id for s in old} & {s.id for s in _segments(hub.root)}
        async with owner.get("/settings") as page:
            text = await page.text()
        assert f"deleted {len(old)} segments" in text
        for s in old:
            assert f"<code>{s.id}</code>: " in text
        assert json.dumps(job)  # the poll's answer is plain JSON


def test_a_check_with_decoding_names_a_segment_that_does_not_decode(vault_hub):
    """`footage check --decode` from the page: the session's own key decrypts each segment."""
    from hub.service import Hub
    from hub.timeutil import parse_time

    hub = vault_hub
    opened = Hub(hub.root)
    try:
        start = parse_time("2026-11-29T08:00:00Z")
        broken = opened.vault.seal("porch", start, start + timedelta(seconds=10), "video/mp4",
                                   b"not an MP4 at all" * 100)
    finally:
        opened.close()
    run_async(_decode(hub, broken))


async def _decode(hub: WebHub, broken) -> None:
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/settings")
        async with owner.post("/settings/vault/check", data={"csrf": token, "decode": "yes"},
                              allow_redirects=False) as r:
            assert r.status == 303
        job = await _until(owner, lambda j: j["state"] == "done", "the decoding check")
        report = job["report"]
        assert (job["decode"], job["step"], report["decoded"]) == (True, "decode", True)
        assert report["not_sealed_to_you"] == 0
        ok = [s for s in _segments(hub.root) if s.status == "ok"]
        assert job["done"] == job["total"] == len(ok)
        undecodable = [r for r in report["repairs"] if r["action"] == "undecodable"]
        assert [r["path"] for r in undecodable] == [broken.path]
        assert undecodable[0]["detail"].startswith(f"segment {broken.id} ")
        assert {r["action"] for r in report["repairs"]} <= {"undecodable", "flagged-missing"}
        async with owner.get("/settings") as page:
            text = await page.text()
        assert "checked and decoded to the end," in text
        assert f"<strong>undecodable</strong>: <code>{broken.path}</code>" in text
