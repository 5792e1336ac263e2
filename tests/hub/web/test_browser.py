"""The web UI in real headless Chromium: sign-in, lockout, idle timeout, what a viewer can reach,
and on every page: no console error, no request to another host, no serious or critical axe-core
violation, and a screenshot on a phone and on a laptop."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

from tests.hub.web.conftest import (
    LAPTOP,
    PASSPHRASE,
    PHONE,
    WebHub,
    add_viewer,
    browser_sign_in,
    page_for,
    run_async,
    shots_dir,
)

VIEWER_PASS = "viewer-passphrase-1"


def _axe_script() -> str:
    from axe_playwright_python.base import AXE_SCRIPT  # axe-core's axe.min.js, as shipped

    return AXE_SCRIPT


def _serious_axe_violations(page) -> list[str]:
    # Evaluated through the DevTools protocol: the page's CSP (no inline script) still holds.
    page.evaluate(_axe_script())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['nodes'][0]['target']}" for v in result["violations"]
            if v["impact"] in ("serious", "critical")]


def _links(page, hub: WebHub) -> list[str]:
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    paths = []
    for href in hrefs:
        parts = urlsplit(href)
        if parts.netloc or not parts.path.startswith("/") or parts.path.startswith("/static/"):
            continue
        if parts.path not in paths and not parts.path.endswith((".jpg", ".mp4")):
            paths.append(parts.path)
    return paths


def _check_pages(browser, hub: WebHub, who: str, passphrase: str) -> list[str]:
    """Visit every page linked from the nav and home; check each; return the paths visited."""
    host = urlsplit(hub.url).netloc
    visited: list[str] = []
    for name, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
        with page_for(browser, hub, viewport) as page:
            browser_sign_in(page, hub, who, passphrase)
            queue = ["/"]
            seen: set[str] = set()
            while queue:
                path = queue.pop(0)
                if path in seen or path in ("/login",):
                    continue
                seen.add(path)
                reply = page.goto(hub.url + path)
                page.wait_for_load_state("networkidle")
                assert reply.status == 200, (who, path, reply.status)
                assert page.console_errors == [], (who, path, page.console_errors)
                assert page.hosts == {host}, (who, path, page.hosts)
                if name == "phone":  # axe's serious rules do not change with the width
                    assert _serious_axe_violations(page) == [], (who, path)
                slug = path.strip("/").replace("/", "-") or "home"
                page.screenshot(path=shots_dir() / f"{who}-{slug}-{name}.png", full_page=True)
                queue += [p for p in _links(page, hub) if p not in seen]
            visited = sorted(seen)
    return visited


@pytest.fixture
def shared_hub(tmp_path):
    hub = WebHub(tmp_path / "cedar", cameras=("porch", "garage")).start()
    run_async(add_viewer(hub, "sam", VIEWER_PASS, "porch"))
    yield hub
    hub.stop()


def test_every_page_is_clean_accessible_and_local_for_the_owner(browser, shared_hub):
    owner_pages = _check_pages(browser, shared_hub, "owner", PASSPHRASE)
    assert {"/", "/settings", "/cameras/porch", "/cameras/garage"} <= set(owner_pages)


def test_every_page_is_clean_accessible_and_local_for_a_viewer(browser, shared_hub):
    viewer_pages = _check_pages(browser, shared_hub, "sam", VIEWER_PASS)
    assert "/cameras/porch" in viewer_pages
    assert not {"/settings", "/requests", "/cameras/garage"} & set(viewer_pages)


def test_a_viewer_cannot_open_what_is_not_theirs_in_the_browser(browser, shared_hub):
    with page_for(browser, shared_hub) as page:
        browser_sign_in(page, shared_hub, "sam", VIEWER_PASS)
        assert page.locator("nav >> text=Settings").count() == 0
        assert page.locator("nav >> text=Requests").count() == 0
        assert page.locator("a[href='/cameras/garage']").count() == 0
        for path, status in (("/settings", 403), ("/cameras/garage", 404),
                             ("/cameras/garage/snapshot.jpg", 404)):
            reply = page.goto(shared_hub.url + path)
            assert reply.status == status, path


def test_sign_in_lockout_and_sign_out_in_the_browser(browser, web_hub):
    with page_for(browser, web_hub) as page:
        page.goto(web_hub.url + "/")
        assert page.url.startswith(web_hub.url + "/login")
        page.fill("#passphrase", "wrong passphrase!")
        page.click("button[type=submit]")
        assert page.locator("[role=alert]").inner_text() == "Wrong name or passphrase."
        page.fill("#passphrase", PASSPHRASE)
        page.click("button[type=submit]")
        assert "Too many failed sign-ins: try again in" in page.locator("[role=alert]").inner_text()
        time.sleep(1.2)
        page.fill("#passphrase", PASSPHRASE)
        page.click("button[type=submit]")
        page.wait_for_url(web_hub.url + "/")
        assert page.locator("#pending").count() == 1
        page.click("text=Sign out owner")
        page.wait_for_url(web_hub.url + "/login")
        page.goto(web_hub.url + "/settings")
        assert page.url.startswith(web_hub.url + "/login")


def test_an_idle_session_signs_out_in_the_browser(browser, tmp_path):
    hub = WebHub(tmp_path / "ash", cameras=(), config="")
    config = hub.root / "config.toml"
    config.write_text(config.read_text().replace("idle_minutes = 15.0", "idle_minutes = 0.02"))
    hub.start()
    try:
        with page_for(browser, hub) as page:
            browser_sign_in(page, hub)
            time.sleep(1.6)
            page.goto(hub.url + "/settings")
            assert page.url.startswith(hub.url + "/login")
    finally:
        hub.stop()
