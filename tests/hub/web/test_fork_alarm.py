"""The fork alarm in the web UI: a gateway that shows two hubs on one LAN two different logs is
caught by their gossip (hub/neighbourhood/gossip.py, the real code path: two real hubs, one
gateway key serving two forked logs, as tests/hub/neighbourhood/test_fork_gossip.py does), and
Home and the Requests page of a real `porchlight run --http` show the alarm with both signed
checkpoints and the withheld requests; it arrives over the live stream (the viewer's stream
gets the fork event; the owner's Requests page in Chromium shows it without a reload); only an
owner may resume (a viewer's post and a forged form change nothing); resuming lifts the alarm,
keeps the proof, and the gateway's next request shows again."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from federation.keys import load_private_key
from federation.neighbourhood_log import checkpoint_verifier
from federation.tlog.checkpoint import open_checkpoint
from hub.datadir import DataDir
from hub.neighbourhood.requests import store_registry
from tests.federation.agency_fixtures import CENTRE, sign_request
from tests.federation.malicious_gateway import MaliciousGateway
from tests.hub.neighbourhood.dishonest import agency_under, cli, inbox, jti, pin_to, until
from tests.hub.web.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSPHRASE,
    PHONE,
    WebHub,
    add_viewer,
    chromium_missing,
    csrf_of,
    porchlight,
    sign_in,
)

LAN = ('[lan]\nenabled = true\nlisten = "127.0.0.1:0"\ninterfaces = ["127.0.0.1"]\n'
       "gossip_interval_s = 0.5\n")
VIEWER_PASS = "robin's own passphrase"
# What sticks out past the right edge of the screen (a phone must not scroll sideways).
WIDER = ("[...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right"
         " > window.innerWidth + 1).map(e => e.tagName + '.' + e.className)")
SECTION = re.compile(r'<section class="card fork-alarm" role="alert".*?</section>', re.S)


def _lan_hub(root, registry) -> WebHub:
    """Make a hub of its own key on the LAN, at the agency fixtures' centre, registry pinned."""
    hub = WebHub(root, cameras=(), config=LAN)
    config = root / "config.toml"
    config.write_text(config.read_text().replace(
        "location = { lat = 51.5007, lon = -0.1246 }",
        f"location = {{ lat = {CENTRE[0]}, lon = {CENTRE[1]} }}"))
    store_registry(DataDir(root), registry)
    return hub


def _text(fragment: str) -> str:
    """Return what a reader sees of an HTML fragment: its text, spaces collapsed (an inline
    element runs on; any other ends a word)."""
    inline = re.sub(r"</?(?:code|time|strong|a)\b[^>]*>", "", fragment)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", inline)).split())


async def _page(client, path: str) -> str:
    async with client.get(path) as reply:
        assert reply.status == 200, (path, reply.status)
        return await reply.text()


async def _alarm_on(client, path: str) -> str | None:
    found = SECTION.search(await _page(client, path))
    return found.group(0) if found else None


async def _first_fork_event(client) -> dict:
    """Read the live stream until the first fork event."""
    async with client.get("/live") as stream:
        async for line in stream.content:
            if line.startswith(b"data: "):
                event = json.loads(line[6:])
                if event["kind"] == "fork":
                    return event
    raise AssertionError("the live stream ended without a fork event")


def _root(signed: str, gateway) -> str:
    checkpoint = open_checkpoint(signed, checkpoint_verifier(gateway.key.public_jwk))
    assert checkpoint.size == 1
    return base64.b64encode(checkpoint.root_hash).decode()


async def test_the_fork_alarm_is_shown_to_the_household_and_only_an_owner_resumes(
    tmp_path, clip25
):
    # One gateway key, two servers: each hub is shown a log of its own.
    honest = MaliciousGateway(tmp_path / "gw-a")
    forked = MaliciousGateway(tmp_path / "gw-b", key=honest.key)
    registry, agency = agency_under(tmp_path, honest.kid)
    maple = _lan_hub(tmp_path / "maple", registry)
    birch = _lan_hub(tmp_path / "birch", registry)
    # Footage inside the requests' window (2 h ending 1 h ago), so maple shows them its owner.
    porchlight("footage", "import", "--data", maple.root, "--camera", "porch", "--start",
               (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0).isoformat(), clip25)

    def sign() -> str:
        return sign_request(agency, honest.kid, time.time())

    async with honest.serve() as url_a, forked.serve() as url_b:
        for hub, url in ((maple, url_a), (birch, url_b)):
            key = load_private_key(hub.root / "keys" / "hub-ed25519.pem")
            pin_to(hub.root, key, honest, url)
            hub.start("--http")
        playwright = chromium = None
        try:
            why = chromium_missing()
            if why:
                pytest.fail(why)
            from axe_playwright_python.base import AXE_SCRIPT  # axe-core's axe.min.js
            from playwright.async_api import async_playwright

            playwright = await async_playwright().start()
            chromium = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                        args=CHROMIUM_ARGS)
            await add_viewer(maple, "robin", VIEWER_PASS)
            async with maple.client() as owner, maple.client() as viewer:
                assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
                assert (await sign_in(viewer, "robin", VIEWER_PASS)).status == 303
                for path in ("/", "/requests"):
                    assert await _alarm_on(owner, path) is None
                # The viewer's live stream is open before the fork happens, and so is the
                # owner's Requests page in Chromium.
                live = asyncio.create_task(_first_fork_event(viewer))
                page = await _requests_page_in_chromium(chromium, maple)

                # Same size, other root: a fork. Maple's request first, shown live on its
                # owner's page; then birch's, so that maple's next event is the fork alone
                # (a request event would refresh the page too).
                first_a, first_b = sign(), sign()
                honest.push(first_a, honest.log.tlog_proof(honest.log.append(first_a.encode())))
                await page.locator(f'#inbox a[href="/requests/{jti(first_a)}"]').wait_for(
                    timeout=30_000)
                forked.push(first_b, forked.log.tlog_proof(forked.log.append(first_b.encode())))
                honest_view, forked_view = honest.log.signed_checkpoint, forked.log.signed_checkpoint
                for hub, token in ((maple, first_a), (birch, first_b)):
                    rows = await until(lambda h=hub: inbox(h.root, "--all"))
                    assert [r["id"] for r in rows] == [jti(token)], rows

                assert await until(lambda: _alarm_on(owner, "/"))
                assert await asyncio.wait_for(live, 30) == {"kind": "fork", "camera": None}
                # The page shows it without a reload: its live part was fetched and swapped.
                alert = page.locator("#inbox #fork-alarm[role=alert]")
                await alert.wait_for(timeout=30_000)
                assert (await alert.locator("h2").inner_text()) == (
                    "Alarm: the gateway showed two different logs")
                assert await page.locator("#inbox").get_attribute("data-refreshed")
                assert page.console_errors == [] and page.hosts == {maple.url.split("//")[1]}
                # On a phone: nothing wider than the screen, and no serious axe-core violation.
                assert await page.evaluate(WIDER) == [], await page.evaluate(WIDER)
                await page.evaluate(AXE_SCRIPT)
                found = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
                assert [f"{v['id']}: {v['nodes'][0]['target']}" for v in found["violations"]
                        if v["impact"] in ("serious", "critical")] == []
                await page.context.close()

                # The gateway's next request is withheld; the alarm counts it.
                second = sign()
                honest.log_and_push(second)
                assert await until(lambda: _withheld_shown(owner))

                done = await asyncio.to_thread(cli, "requests", "list", "--data", maple.root,
                                               "--json")
                alarm = json.loads(done.stdout)["fork_alarm"]
                assert alarm["checkpoints"] == {"ours": honest_view, "theirs": forked_view}
                ours, theirs = _root(honest_view, honest), _root(forked_view, forked)
                assert ours != theirs
                origin = honest_view.splitlines()[0]
                said = (
                    "Alarm: the gateway showed two different logs "
                    f"The gateway {honest.kid[:12]} showed this hub and the LAN neighbour "
                    f"{alarm['peer'][:12]} different logs (two different trees of size 1). "
                    "Both checkpoints are signed by the gateway, and they cannot both be true: "
                    "the gateway may be hiding requests from one of you. "
                    f"Found {alarm['found']}. 1 request from this gateway withheld since then: "
                    "new requests are not shown until an owner has looked.")
                said_ours, said_theirs = (" ".join(v.split()) for v in (honest_view,
                                                                        forked_view))
                table = (f"The checkpoint this hub saw Origin {origin} Size 1 Root hash {ours} "
                         f"The whole signed note {said_ours} The checkpoint the LAN neighbour "
                         f"saw Origin {origin} Size 1 Root hash {theirs} The whole signed note "
                         f"{said_theirs} ")
                kept = (f"Both are kept in the hub's data dir, in {alarm['proof']} "
                        "(ours.checkpoint, theirs.checkpoint): show them to your neighbours or "
                        "to the gateway's operator.")
                resume = ("Resuming shows this gateway's new requests again, as porchlight "
                          f"requests resume does. The proof stays in the data dir, in "
                          f"{alarm['proof']}. I have looked: show new requests again")
                listed = f"Withheld request {jti(second)}, received "
                for who, path in ((owner, "/"), (owner, "/requests"), (viewer, "/")):
                    section = await _alarm_on(who, path)
                    text = _text(section)
                    assert text.startswith(said), (path, text)
                    assert table in text and kept in text, (path, text)
                    for note in (honest_view, forked_view):
                        assert f'<pre class="note">{html.escape(note)}</pre>' in section
                    if who is owner:
                        assert text.endswith(resume) and listed in text, (path, text)
                    else:
                        # A viewer sees the alarm, no action and no request.
                        assert text.endswith("An owner of the household can resume once they "
                                             "have looked."), text
                        assert "/requests/resume" not in section and jti(second) not in text
                # On the Requests page the alarm is part of what the live stream refreshes.
                assert re.search(r'<div id="inbox" data-live-on="request fork">\s*'
                                 r'<section class="card fork-alarm" role="alert"',
                                 await _page(owner, "/requests"))

                # A viewer's post (with the viewer's own valid token) and a forged form (no
                # token) are refused, and change nothing.
                token = await csrf_of(viewer, "/")
                async with viewer.post("/requests/resume", data={"csrf": token}) as reply:
                    assert (reply.status, await reply.text()) == (403, "only an owner may do this")
                async with owner.post("/requests/resume", data={}) as reply:
                    assert (reply.status, await reply.text()) == (
                        403, "the form is out of date or forged (no valid CSRF token)")
                assert json.loads((await asyncio.to_thread(
                    cli, "requests", "list", "--data", maple.root, "--json")).stdout
                )["fork_alarm"] == alarm
                assert await _alarm_on(owner, "/requests")

                # The neighbour leaves (its forked view would raise a new alarm on the next
                # request); the owner resumes: the alarm goes, the proof stays.
                birch.stop()
                token = await csrf_of(owner, "/requests")
                async with owner.post("/requests/resume", data={"csrf": token}) as reply:
                    assert reply.status == 200
                    assert ("Showing the gateway's new requests again. The proof stays in the "
                            f"hub's data dir, in {alarm['proof']}.") in _text(await reply.text())
                for who, path in ((owner, "/"), (owner, "/requests"), (viewer, "/")):
                    assert await _alarm_on(who, path) is None
                assert (maple.root / alarm["proof"] / "ours.checkpoint").read_text() == honest_view
                assert (maple.root / alarm["proof"] / "theirs.checkpoint").read_text() == \
                    forked_view

                # The gateway's requests show again.
                third = sign()
                honest.log_and_push(third)
                assert await until(lambda: _pending_shown(owner, jti(third))), \
                    await inbox(maple.root, "--all")
        finally:
            if chromium is not None:
                await chromium.close()
            if playwright is not None:
                await playwright.stop()
            maple.stop()
            birch.stop()
    for hub in (maple, birch):
        assert not any("Traceback" in line for line in hub.log), "".join(hub.log)[-3000:]


async def _requests_page_in_chromium(browser, hub: WebHub):
    """Sign the owner in through the form in Chromium and open the Requests page."""
    context = await browser.new_context(viewport=PHONE)
    page = await context.new_page()
    page.console_errors, page.hosts = [], set()
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    page.on("request", lambda r: page.hosts.add(re.sub(r"^\w+://([^/]+).*", r"\1", r.url)))
    await page.goto(hub.url + "/login")
    await page.fill("#name", "owner")
    await page.fill("#passphrase", PASSPHRASE)
    await page.click("button[type=submit]")
    await page.wait_for_url(hub.url + "/")
    await page.goto(hub.url + "/requests")
    assert await page.locator("#fork-alarm").count() == 0
    return page


async def _withheld_shown(client) -> bool:
    section = await _alarm_on(client, "/")
    return section is not None and "1 request from this gateway withheld" in _text(section)


async def _pending_shown(client, request_id: str) -> bool:
    page = await _page(client, "/requests")
    waiting = page.split('<h2 id="pending-h">', 1)[1].split('<h2 id="past-h">', 1)[0]
    return f'href="/requests/{request_id}"' in waiting
