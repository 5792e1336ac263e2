"""The owner's backup download and witness switch clicked through in real Chromium against a
real `porchlight run`: the browser saves the backup under its dated name and it restores; the
witness page shows the key and the lines for the gateway's operator. Each page is free of
console errors and serious axe violations, and asks no host but the hub."""

from __future__ import annotations

import re

from tests.hub.web.conftest import (
    LAPTOP,
    LONG_WAIT_MS,
    PHONE,
    WebHub,
    assert_page_clean,
    browser_sign_in,
    page_for,
    porchlight,
    shots_dir,
)
from tests.hub.web.test_browser import _serious_axe_violations
from tests.hub.web.test_witness_page import lan_member


def _clean(page, hub: WebHub, what: str) -> None:
    assert_page_clean(page, hub, what)
    assert _serious_axe_violations(page) == [], what


def test_the_owner_downloads_a_backup_and_turns_the_witness_on_in_chromium(browser, tmp_path):
    hub, port = lan_member(tmp_path / "maple")
    hub.start()
    shots = shots_dir()
    try:
        with page_for(browser, hub, LAPTOP) as page:
            page.set_default_timeout(LONG_WAIT_MS)
            browser_sign_in(page, hub)
            page.goto(f"{hub.url}/settings")
            _clean(page, hub, "settings")
            page.check("#backup-footage")
            with page.expect_download() as waiting:
                page.click("#backup-download")
            download = waiting.value
            assert re.fullmatch(r"porchlight-backup-maple-\d{8}-\d{4}\.tar",
                                download.suggested_filename), download.suggested_filename
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
            assert download.failure() is None
            # The page polled the backup's progress while the hub took it (static/backup.js).
            page.wait_for_function("() => document.getElementById('backup-line').textContent"
                                   " === 'Backup downloaded.'")
            assert page.evaluate("(() => { const b = document.getElementById('backup-progress');"
                                 " return b.value === b.max && b.max > 10000; })()")
            _clean(page, hub, "backup downloaded")

            page.goto(f"{hub.url}/neighbourhood")
            page.click("#witness-link")
            _clean(page, hub, "witness off")
            page.focus("#witness-enable")
            page.keyboard.press("Enter")  # the keyboard alone turns it on
            page.wait_for_selector("#witness-key")
            assert page.inner_text("#witness-state").startswith(
                "This hub witnesses the log of gateway Elm Street")
            assert page.inner_text("#witness-lines").startswith(
                f'[[witnesses]]\nurl = "http://127.0.0.1:{port}"\nvkey = "porchlight-hub-witness/')
            _clean(page, hub, "witness on")
            page.screenshot(path=str(shots / "witness-laptop.png"), full_page=True)
        with page_for(browser, hub, PHONE) as page:
            browser_sign_in(page, hub)
            page.goto(f"{hub.url}/neighbourhood/witness")
            # The long key wraps on a phone: nothing wider than the screen.
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            page.screenshot(path=str(shots / "witness-phone.png"), full_page=True)
    finally:
        hub.stop()
    assert "Traceback" not in "".join(hub.log)
    porchlight("restore", saved, "--data", tmp_path / "restored", "--passphrase-file",
               tmp_path / "maple.pass")
    restored = tmp_path / "restored" / "keys" / "hub-ed25519.pem"
    assert restored.read_bytes() == (hub.root / "keys" / "hub-ed25519.pem").read_bytes()
