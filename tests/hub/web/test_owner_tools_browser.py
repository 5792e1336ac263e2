"""The owner's vault and neighbourhood tools clicked through in real Chromium against a real
`porchlight run` and a real gateway: hold a range of footage and release it, check the vault
(progress while it runs, the report when done, without reloading), and join the gateway. Each
page is free of console errors and serious axe violations, and asks no host but the hub."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest

from tests.hub.neighbourhood.test_neighbourhood import Running, _porchlight
from tests.hub.web.conftest import (
    LAPTOP,
    LONG_WAIT_MS,
    WebHub,
    browser_sign_in,
    page_for,
    porchlight,
    shots_dir,
)
from tests.hub.web.test_browser import _serious_axe_violations
from tests.hub.web.test_holds_page import holds
from tests.hub.web.test_vault_jobs import _wait_for


@pytest.fixture(scope="module")
def owner_world(tmp_path_factory, clip25):
    """A gateway with an invite, and a hub (not yet a member) with yesterday's `porch` footage
    whose own first check and retention pass are over."""
    root = tmp_path_factory.mktemp("tools")
    gw = root / "gateway"
    _porchlight("gateway", "init", "--data", gw, "--name", "Elm Street")
    gateway = Running("gateway", "run", "--data", gw, "--listen", "127.0.0.1:0")
    url = gateway.ready.split(" on ", 1)[1].split(" as ")[0]
    hub = WebHub(root / "maple", cameras=())
    porchlight("camera", "add", "--data", hub.root, "porch", "--rtsp", "rtsp://127.0.0.1:9/none",
               "--no-analysis")
    day = datetime.now().astimezone().date() - timedelta(days=1)
    start = datetime.fromisoformat(f"{day.isoformat()}T10:00:00").astimezone()
    porchlight("footage", "import", "--data", hub.root, "--camera", "porch", "--start",
               start.isoformat(), clip25)
    porchlight("footage", "import", "--data", hub.root, "--camera", "porch", "--start",
               "2020-01-01T00:00:00+00:00", clip25)
    hub.start()
    _wait_for(lambda: any("retention deleted" in line for line in hub.log),
              "the hub's first retention pass")
    yield {"hub": hub, "url": url, "gateway_dir": gw, "day": day.isoformat()}
    hub.stop()
    gateway.stop()
    assert "Traceback" not in "".join(hub.log), "".join(hub.log)[-4000:]


def _clean(page, hub: WebHub, what: str) -> None:
    assert page.console_errors == [], (what, page.console_errors)
    assert page.hosts == {urlsplit(hub.url).netloc}, (what, page.hosts)
    assert _serious_axe_violations(page) == [], what


def test_owner_holds_and_releases_checks_the_vault_and_joins_in_chromium(browser, owner_world):
    world = owner_world
    hub: WebHub = world["hub"]
    shots = shots_dir()
    with page_for(browser, hub, LAPTOP) as page:
        page.set_default_timeout(LONG_WAIT_MS)
        browser_sign_in(page, hub)

        # Hold 10:00:05-10:00:20 of yesterday under a label, see it listed, release it.
        page.goto(f"{hub.url}/recordings/porch?day={world['day']}")
        page.fill("#hold-from", "10:00:05")
        page.fill("#hold-to", "10:00:20")
        page.fill("#hold-label", "insurance claim")
        page.click("#hold button[type=submit]")
        page.wait_for_selector("#notice")
        assert page.inner_text("#notice") == ("Held insurance claim: retention keeps it until "
                                              "you release it.")
        assert page.locator("#holds-table th[scope=row]").all_inner_texts() == ["insurance claim"]
        assert page.locator("rect.tl-hold").count() == 1
        assert {h[2] for h in holds(hub)} == {"insurance claim"}
        _clean(page, hub, "hold")
        page.screenshot(path=str(shots / "owner-tools-hold.png"), full_page=True)
        page.click("button[aria-label='Release insurance claim']")
        page.wait_for_selector("#no-holds")
        assert page.locator("rect.tl-hold").count() == 0
        assert holds(hub) == []

        # Check the vault: a named pipe holds the check at its scan for unindexed files, so the
        # page shows it running; feeding the pipe lets it end, and the report appears in place.
        pipe = hub.root / "vault" / "porch" / "stuck.fifo"
        os.mkfifo(pipe)
        try:
            page.goto(f"{hub.url}/settings")
            page.click("#vault-check")
            page.wait_for_selector("#vault-progress")
            page.wait_for_function(
                "() => /^(\\d+) of \\1 segments$/.test("
                "document.getElementById('vault-job-progress').textContent)")
            _clean(page, hub, "check running")
            page.screenshot(path=str(shots / "owner-tools-check-running.png"), full_page=True)
            url_before = page.url
            threading.Thread(target=pipe.write_bytes, args=(b"not a segment",)).start()
            page.wait_for_selector("#vault-report")
        finally:
            if pipe.exists():
                with open(pipe, "wb"):
                    pass
        assert page.url == url_before  # polled and replaced in place, not reloaded
        assert "segments checked, 1 finding:" in page.inner_text("#vault-job-state")
        assert page.locator("#vault-report li").all_inner_texts() == [
            "quarantined: vault/porch/stuck.fifo (not a vault segment this hub can index; moved "
            "to quarantine/vault/porch/stuck.fifo)"]
        assert page.locator("#vault-progress").count() == 0
        _clean(page, hub, "check done")

        # Join the gateway with an invite code; the page then shows it, connected.
        code = _porchlight("gateway", "invite", "--data", world["gateway_dir"]).stdout.strip()
        page.goto(f"{hub.url}/neighbourhood")
        assert page.inner_text("#no-gateway") == "not a member of a gateway"
        _clean(page, hub, "join form")
        page.fill("#join-url", world["url"])
        page.fill("#join-code", code)
        page.click("#join")
        page.wait_for_selector("#notice")
        assert page.inner_text("#notice") == "Joined the gateway."
        assert page.locator("#join-form").count() == 0
        connected = False
        for _ in range(300):
            if page.inner_text("#gateway-state") == "connected":
                connected = True
                break
            page.wait_for_timeout(200)
            page.reload()
        assert connected, page.inner_text("#neighbours")
        assert "Elm Street at " + world["url"] in page.inner_text("#neighbours")
        _clean(page, hub, "joined")
        page.screenshot(path=str(shots / "owner-tools-joined.png"), full_page=True)
