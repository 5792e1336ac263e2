"""Settings > Cameras in real Chromium against a real `porchlight run`: discovery (mDNS on
loopback) into the add form, rename, remove, motion masks and zones drawn on the snapshot and
stored where the motion detector reads them, retention; bad input changes nothing."""

from __future__ import annotations

import hashlib
import socket
import tomllib
from concurrent.futures import ThreadPoolExecutor

import pytest
from zeroconf import IPVersion, ServiceInfo, Zeroconf

from hub.cameras.discovery import RTSP_SERVICE
from plugins.detectors.motion import MotionConfig
from tests.hub.web.conftest import (
    LAPTOP,
    PHONE,
    WebHub,
    assert_page_clean,
    browser_sign_in,
    page_for,
    shots_dir,
)

# Discovery may only look on loopback in a test: never on the machine's real interfaces.
LOOPBACK_ONLY = '[lan]\ninterfaces = ["127.0.0.1"]\n'


@pytest.fixture
def hub(tmp_path):
    hub = WebHub(tmp_path / "rowan", config=LOOPBACK_ONLY)
    config = hub.root / "config.toml"
    config.write_text(config.read_text().replace("segment_seconds = 10.0", "segment_seconds = 2.0"))
    hub.start()
    yield hub
    hub.stop()


def _config(hub: WebHub) -> dict:
    return tomllib.loads((hub.root / "config.toml").read_text())


def _digest(hub: WebHub) -> str:
    return hashlib.sha256((hub.root / "config.toml").read_bytes()).hexdigest()


def _sign_in(page, hub: WebHub) -> None:
    """Sign in; the home page it lands on is checked by test_browser.py (its snapshots may
    not exist yet in a hub started a moment ago), so only this file's pages are checked here."""
    # Generous waits: the machine may be busy; no test here measures speed.
    page.set_default_timeout(120_000)
    browser_sign_in(page, hub)
    page.wait_for_load_state("networkidle")
    page.console_errors.clear()


def _flat(polygon: list) -> list[float]:
    return [v for point in polygon for v in point]


def _cameras(hub: WebHub) -> dict[str, dict]:
    return {c["name"]: c for c in _config(hub).get("cameras", [])}


REFUSED = "Failed to load resource: the server responded with a status of 400 (Bad Request)"


def _refused(page) -> None:
    """Check that the only console errors are the hub's 400 answers to bad input; forget them."""
    assert page.console_errors and set(page.console_errors) == {REFUSED}, page.console_errors
    page.console_errors.clear()


def _clean(page, hub: WebHub) -> None:
    page.wait_for_load_state("networkidle")
    assert_page_clean(page, hub)


@pytest.fixture
def rtsp_on_mdns():
    """A camera advertising `_rtsp._tcp` by mDNS on loopback, as a NAS or a camera would."""
    # Made in a thread of its own: Playwright's sync API holds an event loop in this thread,
    # which Zeroconf would otherwise adopt and then wait on forever.
    with ThreadPoolExecutor(1) as pool:
        zc = pool.submit(Zeroconf, interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only).result()
    info = ServiceInfo(RTSP_SERVICE, f"Driveway cam.{RTSP_SERVICE}",
                       addresses=[socket.inet_aton("127.0.0.1")], port=8554,
                       properties={"path": "stream1"}, server="driveway-cam.local.")
    zc.register_service(info)
    yield "rtsp://127.0.0.1:8554/stream1"
    zc.unregister_service(info)
    zc.close()


def test_discover_add_rename_remove_a_camera(browser, hub, rtsp_on_mdns):
    with page_for(browser, hub) as page:
        _sign_in(page, hub)
        page.click("nav >> text=Settings")
        page.click("#cameras-settings")
        page.wait_for_url(hub.url + "/settings/cameras")
        page.click("#discover")
        found = page.locator("#found")
        assert rtsp_on_mdns in found.inner_text()
        page.click("#found a:text('use this')")
        assert page.input_value("#cam-rtsp") == rtsp_on_mdns
        assert page.is_checked("input[name=kind][value=rtsp]")

        # A name the hub refuses: the exact error, and config.toml is untouched.
        before = _digest(hub)
        page.fill("#cam-name", "Drive Way")
        page.click("#add-camera")
        assert page.locator("#error").inner_text() == (
            "camera name 'Drive Way' is not valid: use 1-32 of a-z, 0-9, '-' and '_', starting "
            "with a letter or digit")
        assert _digest(hub) == before
        _refused(page)
        assert page.input_value("#cam-rtsp") == rtsp_on_mdns  # the form keeps what was typed

        page.fill("#cam-name", "driveway")
        page.click("#add-camera")
        assert page.locator("#notice").inner_text() == (
            "Added camera driveway: the hub starts it within a second.")
        assert _cameras(hub)["driveway"]["url"] == rtsp_on_mdns
        assert page.locator("#camera-driveway").count() == 1

        page.fill("#rename-driveway", "gate")
        page.click("#camera-driveway button:text('Rename')")
        page.wait_for_selector("#camera-gate")
        assert set(_cameras(hub)) == {"porch", "gate"}

        before = _digest(hub)
        page.fill("#rename-gate", "porch")
        page.click("#camera-gate button:text('Rename')")
        assert page.locator("#error").inner_text() == "camera 'porch' already exists"
        assert _digest(hub) == before
        _refused(page)

        page.click("#camera-gate button:text('Remove')")
        page.wait_for_selector("#camera-gate", state="detached")
        assert set(_cameras(hub)) == {"porch"}
        _clean(page, hub)


def test_masks_and_zones_drawn_on_the_snapshot_reach_the_motion_detector(browser, hub):
    for name, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
        with page_for(browser, hub, viewport) as page:
            _sign_in(page, hub)
            # The page offers the picture once the camera has recorded a segment.
            for _ in range(60):
                page.goto(hub.url + "/settings/cameras/porch/motion")
                if page.locator("#areas-snapshot").count():
                    break
                page.wait_for_timeout(500)
            page.wait_for_function(
                "document.getElementById('areas-snapshot').naturalWidth > 0")
            _clean(page, hub)
            page.screenshot(path=shots_dir() / f"owner-motion-areas-{name}.png", full_page=True)
    with page_for(browser, hub) as page:
        _sign_in(page, hub)
        page.goto(hub.url + "/settings/cameras/porch/motion")
        overlay = page.locator("#areas-overlay")
        box = overlay.bounding_box()

        def click(x: float, y: float) -> None:
            overlay.click(position={"x": x * box["width"], "y": y * box["height"]})

        for x, y in ((0.1, 0.1), (0.4, 0.1), (0.4, 0.3)):
            click(x, y)
        assert page.locator("#points-count").inner_text() == "3 points placed."
        page.click("#finish-mask")
        page.fill("#zone-name", "path")
        for x, y in ((0.5, 0.6), (0.9, 0.6), (0.9, 0.95), (0.5, 0.95)):
            click(x, y)
        page.click("#finish-zone")
        assert page.locator("#areas-overlay polygon").count() == 2
        page.screenshot(path=shots_dir() / "owner-motion-areas-drawn-laptop.png", full_page=True)
        page.click("#save-areas")
        page.wait_for_url(hub.url + "/settings/cameras/porch/motion?saved=1")
        _clean(page, hub)

        motion = _cameras(hub)["porch"]["motion"]
        [mask] = motion["masks"]
        assert _flat(mask) == pytest.approx([0.1, 0.1, 0.4, 0.1, 0.4, 0.3], abs=0.01)
        assert _flat(motion["zones"]["path"]) == pytest.approx(
            [0.5, 0.6, 0.9, 0.6, 0.9, 0.95, 0.5, 0.95], abs=0.01)
        MotionConfig.model_validate(motion)  # what the detector is built from

        # Typed by hand, with a point outside the picture: the exact error, nothing stored.
        before = _digest(hub)
        page.fill("#areas", "mask: 0,0 0.5,0 1.5,0.5\n")
        page.click("#save-areas")
        assert page.locator("#error").inner_text() == (
            "line 1: '1.5,0.5' is outside the picture (x and y go from 0 to 1)")
        assert _digest(hub) == before
        _refused(page)


def test_retention_is_edited_and_bad_values_change_nothing(browser, hub):
    with page_for(browser, hub) as page:
        _sign_in(page, hub)
        page.goto(hub.url + "/settings/cameras")
        page.fill("#ret-days", "9")
        page.fill("#ret-bytes", "3 GB")
        page.fill("#ret-free", "7")
        page.click("#save-retention")
        assert page.locator("#notice").inner_text() == (
            "Retention saved: it applies from the next retention pass.")
        retention = _config(hub)["retention"]
        assert (retention["max_age_days"], retention["max_bytes"], retention["min_free_percent"]) \
            == (9, 3_000_000_000, 7)
        assert page.input_value("#ret-days") == "9.0"

        before = _digest(hub)
        for field, value, error in (
                ("#ret-bytes", "lots", "'lots' is not a size (examples: 500000000, \"200 GB\", "
                                       "\"1.5 GiB\")"),
                ("#ret-free", "100", "retention: min_free_percent: Input should be less than 100")):
            page.goto(hub.url + "/settings/cameras")
            # The browser's own checks would stop the form first; the hub must refuse it too.
            page.eval_on_selector("#retention-form", "f => f.noValidate = true")
            page.fill(field, value)
            page.click("#save-retention")
            assert page.locator("#error").inner_text() == error
            assert _digest(hub) == before
            _refused(page)
        _clean(page, hub)
        for name, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
            page.set_viewport_size(viewport)
            page.goto(hub.url + "/settings/cameras")
            page.screenshot(path=shots_dir() / f"owner-settings-cameras-{name}.png", full_page=True)
