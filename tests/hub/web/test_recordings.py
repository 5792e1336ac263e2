"""Recordings in real Chromium against a real `porchlight run`: the day's timeline, playback of
a chosen moment decrypted in memory (moving frames, at the right time), export as an MP4
download, and a viewer kept to what was shared with them and sealed to their key."""

from __future__ import annotations

import hashlib
import io
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest

from hub.datadir import DataDir
from hub.db import connect
from hub.household import unlock_household_identity
from hub.vault.store import Segment, Vault
from plugins.cameras.scene import read_stamp
from tests.hub.web.conftest import (
    LAPTOP,
    PASSPHRASE,
    PHONE,
    add_viewer,
    browser_sign_in,
    page_for,
    porchlight,
    run_async,
    shots_dir,
    sign_in,
)
from tests.hub.web.video import ANN, grab_moving, stamped_hub

PLAYING = """() => {
  const v = document.getElementById('playback');
  return !v.paused && !v.seeking && v.readyState >= 3;
}"""


def segments(root: Path, camera: str) -> list[Segment]:
    db = connect(root / "porchlight.db")
    try:
        return [s for s in Vault(DataDir(root), db, []).segments(camera)
                if s.media_type == "video/mp4"]
    finally:
        db.conn.close()


def wait_for(root: Path, camera: str, after: datetime, count: int) -> list[Segment]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = [s for s in segments(root, camera) if s.start >= after]
        if len(found) >= count:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no {count} segments of {camera} after {after}")


def plaintext_files(root: Path) -> list[str]:
    """Return the files in the data dir that hold plaintext video (footage must only be age files)."""
    found = []
    for path in root.rglob("*"):
        try:
            with open(path, "rb") as handle:
                head = handle.read(12)
        except (IsADirectoryError, FileNotFoundError):
            continue  # a folder, or a seal's temp file renamed meanwhile
        if head[4:8] in (b"ftyp", b"moof", b"styp", b"moov", b"mdat"):
            found.append(str(path.relative_to(root)))
    return found


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A hub that recorded porch before and after sharing it with ann, and garage (private)."""
    hub = stamped_hub(tmp_path_factory.mktemp("recordings") / "maple").start()
    wait_for(hub.root, "porch", datetime(2000, 1, 1, tzinfo=UTC), 2)
    shared_at = datetime.now(UTC)
    run_async(add_viewer(hub, "ann", ANN, "porch"))
    wait_for(hub.root, "porch", shared_at, 5)
    wait_for(hub.root, "garage", shared_at, 1)
    hub.shared_at = shared_at
    yield hub
    hub.stop()


def media_summary(data: bytes) -> tuple[int, float, str]:
    """Return an MP4's frame count, duration and the SHA-256 of its video packets in order."""
    digest = hashlib.sha256()
    with av.open(io.BytesIO(data)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
        for packet in packets:
            digest.update(bytes(packet))
        duration = round(container.duration / av.time_base, 3)
    return len(packets), duration, digest.hexdigest()


def stamps_of(root: Path, segment: Segment) -> tuple[int, int]:
    """Return the capture times stamped in a segment's first and last frames."""
    db = connect(root / "porchlight.db")
    try:
        identity = unlock_household_identity(DataDir(root), PASSPHRASE)
        plaintext = Vault(DataDir(root), db, []).read(segment, identity)
    finally:
        db.conn.close()
    with av.open(io.BytesIO(plaintext)) as container:
        stamps = [read_stamp(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    return stamps[0], stamps[-1]


def clock(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


def test_playback_of_a_chosen_moment_shows_moving_frames_of_that_moment(browser, recorded):
    hub = recorded
    shots = shots_dir()
    # A segment holding a whole second (the form asks for seconds), and its frames' capture times.
    target = next(s for s in wait_for(hub.root, "porch", hub.shared_at, 5)[1:]
                  if s.start.replace(microsecond=0) + timedelta(seconds=1) < s.end)
    moment = (target.start.replace(microsecond=0) + timedelta(seconds=1)).astimezone()
    first_stamp, last_stamp = stamps_of(hub.root, target)
    for name, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
        with page_for(browser, hub, viewport) as page:
            browser_sign_in(page, hub)
            page.goto(hub.url + "/recordings")
            page.screenshot(path=str(shots / f"recordings-list-{name}.png"), full_page=True)
            page.click("h2 a[href^='/recordings/porch']")
            page.wait_for_selector("#playback-state:text-matches('^Ready at')")
            assert page.locator("#timeline rect.tl-coverage").count() >= 1
            # Keyboard path: type a time of day and play from it.
            page.fill("#at", clock(moment))
            page.press("#at", "Enter")
            page.wait_for_function(PLAYING)
            first, later = grab_moving(page, "playback")
            # The frame shown is one of the segment holding the moment asked for, or (on a busy
            # machine, where playback has run on before the grab) of the seconds right after it.
            slack = last_stamp - first_stamp
            assert first_stamp <= first["stamp"] <= last_stamp + slack, (first, first_stamp,
                                                                        last_stamp)
            assert 0 < (later["stamp"] - first["stamp"]) % 2**32 < 30_000
            # Clicking the timeline plays from there: the start of the day's footage.
            # A pixel of a day-wide timeline is about a minute: click the pixel where footage starts.
            box = page.locator("#timeline").bounding_box()
            start = float(page.get_attribute("#timeline rect.tl-coverage >> nth=0", "x"))
            length = float(page.get_attribute("#player", "data-length"))
            page.click("#timeline", position={"x": int(start / length * box["width"]), "y": 28})
            page.wait_for_function(PLAYING)
            grab_moving(page, "playback")
            page.screenshot(path=str(shots / f"recordings-{name}.png"), full_page=True)
            assert page.console_errors == []
            assert page.hosts == {hub.url.split("//")[1]}
    assert plaintext_files(hub.root) == []


def test_export_downloads_the_range_like_footage_export(browser, recorded, tmp_path):
    hub = recorded
    found = wait_for(hub.root, "porch", hub.shared_at, 5)
    # Five whole seconds from inside the recording, and footage past their end.
    start = found[1].start.replace(microsecond=0) + timedelta(seconds=1)
    end = start + timedelta(seconds=5)
    for _ in range(240):
        if segments(hub.root, "porch")[-1].start > end:
            break
        time.sleep(0.5)
    with page_for(browser, hub, LAPTOP) as page:
        browser_sign_in(page, hub)
        page.goto(hub.url + f"/recordings/porch?day={start.astimezone().date().isoformat()}")
        page.fill("#export-from", clock(start))
        page.fill("#export-to", clock(end))
        with page.expect_download() as download:
            page.click("#export button[type=submit]")
        data = Path(download.value.path()).read_bytes()
        # Named by the range asked for.
        stamp = "%Y%m%dT%H%M%SZ"
        assert download.value.suggested_filename == \
            f"porch-{start.strftime(stamp)}-{end.strftime(stamp)}.mp4"
        assert page.console_errors == []
    # Exactly what `porchlight footage export` writes for the same range (same frames, same span).
    asked_from, asked_to = start, end
    cli_out = tmp_path / "cli.mp4"
    porchlight("footage", "export", "--data", hub.root, "--camera", "porch",
               "--from", asked_from.isoformat(), "--to", asked_to.isoformat(), "--out", cli_out,
               "--passphrase-file", hub.root.parent / f"{hub.root.name}.pass")
    assert media_summary(data) == media_summary(cli_out.read_bytes())
    frames, duration = media_summary(data)[:2]
    assert frames > 0 and duration > 0
    assert plaintext_files(hub.root) == []


def test_bad_export_ranges_get_one_clear_error(recorded):
    run_async(_bad_export_ranges(recorded))


async def _bad_export_ranges(hub) -> None:
    day = datetime.now().astimezone().date().isoformat()
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        for query, status, text in (
            ("from=25:00&to=26:00", 400, "from: '25:00' is not a time of day (example: 14:05:30)"),
            ("from=10:00:00&to=09:00:00", 400, "to must be after from"),
            ("from=10:00:00&to=10:20:00", 400,
             "a download holds at most 15 minutes; use porchlight footage export for longer"),
            ("day=2026-02-30&from=10:00&to=10:01", 400, "day: '2026-02-30' is not a day on the calendar"),
            ("day=2001-01-01&from=10:00&to=10:01", 404,
             "no footage of porch between 2001-01-01T10:00:00Z and 2001-01-01T10:01:00Z"),
        ):
            if not query.startswith("day="):
                query = f"day={day}&{query}"
            async with owner.get(f"/recordings/porch/export.mp4?{query}") as reply:
                assert (reply.status, await reply.text()) == (status, text), query
    assert plaintext_files(hub.root) == []


def test_a_viewer_plays_only_footage_sealed_to_her(recorded):
    run_async(_viewer_plays_only_her_footage(recorded))


async def _viewer_plays_only_her_footage(hub) -> None:
    porch = segments(hub.root, "porch")
    before = [s for s in porch if s.end <= hub.shared_at]
    after = [s for s in porch if s.start > hub.shared_at]
    garage = segments(hub.root, "garage")
    async with hub.client() as ann:
        assert (await sign_in(ann, "ann", ANN)).status == 303
        async with ann.get("/recordings") as page:
            text = await page.text()
            assert "/recordings/porch" in text and "garage" not in text
        for path in ("/recordings/garage", f"/recordings/garage/segments/{garage[0].id}.mp4",
                     f"/recordings/porch/segments/{garage[0].id}.mp4",
                     "/recordings/garage/export.mp4?from=00:00&to=00:01"):
            async with ann.get(path) as reply:
                assert reply.status == 404, path
                assert await reply.text() in ("no such camera", "no such recording"), path
        async with ann.get(f"/recordings/porch/segments/{before[0].id}.mp4") as reply:
            assert reply.status == 403
            assert await reply.text() == ("this footage was recorded before the camera was shared "
                                          "with you, so your key cannot open it")
        async with ann.get(f"/recordings/porch/segments/{after[1].id}.mp4") as reply:
            assert reply.status == 200
            assert reply.headers["Content-Type"].startswith('video/mp4; codecs="avc1.')
            assert reply.headers["Cache-Control"] == "no-store"
            body = await reply.read()
        assert body[4:8] == b"ftyp"
        with av.open(io.BytesIO(body)) as container:
            assert sum(1 for _ in container.decode(video=0)) > 10
        # A range that starts before the share: refused whole, with the reason.
        day = before[-1].start.astimezone().date().isoformat()
        span = f"from={clock(before[-1].start)}&to={clock(after[1].end + timedelta(seconds=1))}"
        async with ann.get(f"/recordings/porch/export.mp4?day={day}&{span}") as reply:
            assert reply.status == 403
            assert await reply.text() == ("some of this range was recorded before the camera was "
                                          "shared with you, so your key cannot open it: choose a "
                                          "later start")
    async with hub.client() as stranger:
        async with stranger.get(f"/recordings/porch/segments/{after[1].id}.mp4") as reply:
            assert reply.status == 401


def test_the_timeline_draws_footage_and_holds_where_they_are(recorded):
    hub = recorded
    held = segments(hub.root, "porch")[1]
    day = held.start.astimezone().date().isoformat()

    async def page() -> str:
        async with hub.client() as owner:
            assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
            async with owner.get(f"/recordings/porch?day={day}") as reply:
                assert reply.status == 200
                return await reply.text()

    assert 'class="tl-hold"' not in run_async(page())
    db = connect(hub.root / "porchlight.db")
    try:
        Vault(DataDir(hub.root), db, []).hold([held], "request", "test-hold")
    finally:
        db.conn.close()
    text = run_async(page())
    midnight = datetime.fromisoformat(f"{day}T00:00:00").astimezone()

    def xs(kind: str) -> list[float]:
        return [float(x) for x in re.findall(rf'<rect class="tl-{kind}" x="([0-9.]+)"', text)]

    assert xs("hold") == [pytest.approx((held.start - midnight).total_seconds(), abs=0.01)]
    first = segments(hub.root, "porch")[0]
    assert xs("coverage")[0] == pytest.approx((first.start - midnight).total_seconds(), abs=0.01)
