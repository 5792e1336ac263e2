"""Settings > Cameras turns a camera's recording and motion analysis on and off (issue 12's
switches, in the owner's web UI of issue 10) with the rules of `porchlight camera set`, against a
real `porchlight run --http` recording synthetic cameras: the running hub follows, a refusal is
the CLI's exact error, and a viewer or a forged form changes nothing."""

from __future__ import annotations

import asyncio
import html
import re
import sqlite3
import time
from pathlib import Path

import pytest

from tests.hub.web.conftest import (
    PASSPHRASE,
    WebHub,
    add_viewer,
    browser_sign_in,
    csrf_of,
    page_for,
    porchlight,
    sign_in,
)
from tests.hub.web.video import ANN

# Small, short-segment cameras: the tests count segments, and the machine is shared.
SMALL = 'type = "synthetic"\nwidth = 320\nheight = 180\nfps = 10'
MOTION_REFUSED = ('camera drive records only around motion (mode = "motion"): its motion '
                  "analysis cannot be turned off")


def _hub(root: Path, *cameras: str, motion: str | None = None) -> WebHub:
    hub = WebHub(root, cameras=cameras)
    if motion:
        porchlight("camera", "add", "--data", hub.root, motion, "--synthetic", "--mode", "motion")
    config = hub.root / "config.toml"
    config.write_text(config.read_text().replace('type = "synthetic"', SMALL)
                      .replace("segment_seconds = 10.0", "segment_seconds = 1.0"))
    return hub.start("--http")


@pytest.fixture
def recording_hub(tmp_path):
    """porch, whose recording the test switches, and garage, which keeps recording: its new
    segments show that time went by, so 'no new segment of porch' is never a guess."""
    hub = _hub(tmp_path / "hazel", "porch", "garage")
    yield hub
    hub.stop()
    assert "Traceback" not in "".join(hub.log), "".join(hub.log)[-4000:]


@pytest.fixture
def guarded_hub(tmp_path):
    hub = _hub(tmp_path / "alder", "porch", motion="drive")
    yield hub
    hub.stop()
    assert "Traceback" not in "".join(hub.log), "".join(hub.log)[-4000:]


def _count(hub: WebHub, camera: str) -> int:
    """Count the camera's segments in the vault index, as the running hub wrote it."""
    db = sqlite3.connect(f"file:{hub.root / 'porchlight.db'}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("select count(*) from segments where camera = ?", [camera]).fetchone()[0]
    finally:
        db.close()


def _wait_until(predicate, what: str, timeout: float = 120.0) -> None:
    # A deadline only against a hung hub: on a busy machine this may take long, never wrongly.
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _logged(hub: WebHub, text: str) -> bool:
    return any(text in line for line in list(hub.log))


def _error_of(page: str) -> str:
    return html.unescape(re.search(r'<p class="error" role="alert" id="error">(.*?)</p>',
                                   page, re.S).group(1))


async def test_refusals_show_their_error_and_change_nothing(guarded_hub):
    hub = guarded_hub
    config = hub.root / "config.toml"
    await add_viewer(hub, "ann", ANN, "porch", "drive")
    before = config.read_bytes(), config.stat().st_mtime_ns

    async with hub.client() as viewer:
        assert (await sign_in(viewer, "ann", ANN)).status == 303
        # The viewer's own valid token: refused for the role, not for the form.
        token = await csrf_of(viewer, "/")
        async with viewer.post("/settings/cameras/porch/switches", data={
                "csrf": token, "recording": "off", "analysis": "off"},
                allow_redirects=False) as reply:
            assert (reply.status, await reply.text()) == (403, "only an owner may do this")
        async with viewer.get("/settings/cameras") as reply:
            assert reply.status == 403

    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/settings/cameras")
        # The CLI's rule, word for word: a motion camera records only around what analysis finds.
        async with owner.post("/settings/cameras/drive/switches", data={
                "csrf": token, "recording": "on", "analysis": "off"}) as reply:
            assert reply.status == 400
            page = await reply.text()
        assert _error_of(page) == MOTION_REFUSED
        # The page shows the switches as they still are.
        assert re.search(r'<select id="analysis-drive" name="analysis">\s*'
                         r'<option value="on" selected>', page)
        for path, form, status, error in (
                ("porch", {"recording": "maybe", "analysis": "on"}, 400,
                 "recording: choose on or off"),
                ("porch", {}, 400, "say what to change: recording on or off, motion analysis on "
                 "or off"),
                ("ghost", {"recording": "off"}, 400, "no camera 'ghost' in config.toml")):
            async with owner.post(f"/settings/cameras/{path}/switches",
                                  data={"csrf": token, **form}) as reply:
                assert (reply.status, _error_of(await reply.text())) == (status, error)
        # A form without its CSRF token, from the owner's own session.
        async with owner.post("/settings/cameras/porch/switches",
                              data={"recording": "off", "analysis": "off"},
                              allow_redirects=False) as reply:
            assert (reply.status, await reply.text()) == (
                403, "the form is out of date or forged (no valid CSRF token)")
        assert (config.read_bytes(), config.stat().st_mtime_ns) == before

        # What the owner may do is done, and the running hub restarts porch without analysis.
        async with owner.post("/settings/cameras/porch/switches", data={
                "csrf": token, "recording": "on", "analysis": "off"},
                allow_redirects=False) as reply:
            assert (reply.status, reply.headers["Location"]) == (
                303, "/settings/cameras?switched=porch#camera-porch")
        async with owner.get("/settings/cameras?switched=porch") as reply:
            page = await reply.text()
    assert "Camera porch: recording on, motion analysis off. The hub follows within a second." \
        in page
    assert "analysis = false" in config.read_text()
    await asyncio.to_thread(
        _wait_until, lambda: _logged(hub, "camera porch: started (synthetic, continuous, no "
                                     "analysis)"), "the hub to restart porch without analysis")


def _switch_recording_by_keyboard(page, hub: WebHub, key: str, now: str) -> None:
    """Choose porch's recording with the arrow keys, Tab to its button and press Enter."""
    page.goto(hub.url + "/settings/cameras")
    page.get_by_label("Recording of porch").focus()
    page.keyboard.press(key)
    assert page.get_by_label("Recording of porch").input_value() == now
    page.keyboard.press("Tab")  # to the analysis switch
    page.keyboard.press("Tab")  # to the button
    assert page.evaluate("document.activeElement.textContent") == \
        "Save recording and analysis of porch"
    page.keyboard.press("Enter")
    page.wait_for_url(hub.url + "/settings/cameras?switched=porch#camera-porch")
    assert page.locator("#notice").inner_text() == (
        f"Camera porch: recording {now}, motion analysis on. The hub follows within a second.")


def test_recording_turned_off_and_on_from_the_web_stops_and_resumes_segments(
        recording_hub, browser):
    hub = recording_hub
    with page_for(browser, hub) as page:
        page.set_default_timeout(120_000)  # a busy machine; nothing here measures speed
        browser_sign_in(page, hub)
        _wait_until(lambda: _count(hub, "porch") >= 2, "porch's first segments")

        _switch_recording_by_keyboard(page, hub, "ArrowDown", "off")
        _wait_until(lambda: _logged(hub, "camera porch: recording off"), "the hub to follow")
        assert "recording off" in page.locator("#camera-porch").inner_text()
        porch, garage = _count(hub, "porch"), _count(hub, "garage")
        _wait_until(lambda: _count(hub, "garage") >= garage + 2, "garage's next 2 segments")
        # At most the one segment that was being sealed as the switch flipped.
        settled = _count(hub, "porch")
        assert settled - porch <= 1
        garage = _count(hub, "garage")
        _wait_until(lambda: _count(hub, "garage") >= garage + 3, "garage's next 3 segments")
        assert _count(hub, "porch") == settled

        _switch_recording_by_keyboard(page, hub, "ArrowUp", "on")
        _wait_until(lambda: _logged(hub, "camera porch: recording on"), "the hub to follow")
        _wait_until(lambda: _count(hub, "porch") >= settled + 2, "porch to record again")
        assert page.console_errors == []
        assert page.hosts == {hub.url.split("://", 1)[1]}
