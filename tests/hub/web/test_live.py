"""Live view in real Chromium against a real `porchlight run`: moving frames by stream copy
into MSE, and no way in for a viewer to a camera not shared with them (page or WebSocket)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.hub.web.conftest import (
    LAPTOP,
    PASSPHRASE,
    PHONE,
    add_viewer,
    browser_sign_in,
    csrf_of,
    page_for,
    porchlight,
    run_async,
    shots_dir,
    sign_in,
)
from tests.hub.web.video import ANN, grab_moving, stamped_hub


@pytest.fixture(scope="module")
def live_hub(tmp_path_factory):
    hub = stamped_hub(tmp_path_factory.mktemp("live") / "maple").start()
    run_async(add_viewer(hub, "ann", ANN, "porch"))
    yield hub
    hub.stop()


def test_live_view_plays_moving_frames_from_the_camera(browser, live_hub):
    hub = live_hub
    shots = shots_dir()
    for name, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
        with page_for(browser, hub, viewport) as page:
            browser_sign_in(page, hub)
            page.goto(hub.url + "/cameras/porch")
            first, later = grab_moving(page, "live-video")
            assert page.is_hidden("#snapshot") and page.is_visible("#live-video")
            assert page.text_content("#live-state") == "Live."
            # Moving frames: the picture changed and the stamped capture times advance.
            assert first["stamp"] is not None and later["stamp"] is not None
            assert 0 < (later["stamp"] - first["stamp"]) % 2**32 < 60_000
            assert later["time"] > first["time"]
            page.screenshot(path=str(shots / f"live-{name}.png"), full_page=True)
            assert page.console_errors == []
            assert page.hosts == {hub.url.split("//")[1]}


def test_a_viewer_cannot_reach_a_private_camera_live(browser, live_hub):
    hub = live_hub
    with page_for(browser, hub, LAPTOP) as page:
        browser_sign_in(page, hub, "ann", ANN)
        assert "/cameras/garage" not in page.content()
        reply = page.goto(hub.url + "/cameras/garage")
        assert reply.status == 404 and page.text_content("body") == "no such camera"
        # The shared camera plays for her.
        page.goto(hub.url + "/cameras/porch")
        grab_moving(page, "live-video")
        # The socket of the private camera, asked for from her own page: refused at the handshake.
        closed = page.evaluate("""() => new Promise(done => {
            const s = new WebSocket('wss://' + location.host + '/cameras/garage/live');
            s.onmessage = () => done('message');
            s.onclose = (e) => done('closed ' + e.code);
        })""")
        assert closed == "closed 1006"

    async def direct() -> None:
        async with hub.client() as ann:
            assert (await sign_in(ann, "ann", ANN)).status == 303
            for camera, status in (("garage", 404), ("nowhere", 404)):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await ann.ws_connect(f"/cameras/{camera}/live")
                assert refused.value.status == status
            async with ann.get("/cameras/garage/live") as reply:
                assert reply.status == 404 and await reply.text() == "no such camera"
            # Her own camera, but from another site's page: refused by its Origin.
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await ann.ws_connect("/cameras/porch/live", origin="https://evil.example")
            assert refused.value.status == 403
            async with ann.ws_connect("/cameras/porch/live") as socket:
                mime = await socket.receive_str(timeout=20)
                assert mime.startswith('video/mp4; codecs="avc1.')
                init = await socket.receive_bytes(timeout=20)
                assert init[4:8] == b"ftyp" and b"moov" in init
                fragment = await socket.receive_bytes(timeout=20)
                assert fragment[4:8] == b"moof"
        async with hub.client() as stranger:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await stranger.ws_connect("/cameras/porch/live")
            assert refused.value.status == 401

    run_async(direct())


def test_unsharing_ends_the_viewers_live_stream(live_hub):
    hub = live_hub

    async def scenario() -> None:
        await add_viewer(hub, "bob", "bob-passphrase-long", "porch")
        async with hub.client() as bob, hub.client() as owner:
            assert (await sign_in(bob, "bob", "bob-passphrase-long")).status == 303
            async with bob.ws_connect("/cameras/porch/live") as socket:
                await socket.receive_str(timeout=20)
                await sign_in(owner, "owner", PASSPHRASE)
                token = await csrf_of(owner, "/settings")
                async with owner.post("/settings/people/bob/share", data={
                        "csrf": token, "camera": "porch", "shared": "no"}) as reply:
                    assert reply.status == 200
                # The stream goes on until the hub notices (it checks every 5 s); bound the wait.
                deadline = asyncio.get_running_loop().time() + 60
                while (message := await socket.receive(timeout=30)).type == aiohttp.WSMsgType.BINARY:
                    assert asyncio.get_running_loop().time() < deadline, "still streaming"
                assert message.type == aiohttp.WSMsgType.CLOSE
                assert (message.data, message.extra) == (1008, "signed out"), message

    run_async(scenario())


def test_a_camera_that_is_not_running_says_so_on_its_socket(browser, live_hub):
    """Last in this module: it removes garage from the running hub."""
    hub = live_hub
    porchlight("camera", "remove", "--data", hub.root, "garage")

    async def closed() -> tuple:
        async with hub.client() as owner:
            assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
            # The hub stops the camera within a second of the config change.
            for _ in range(60):
                async with owner.ws_connect("/cameras/garage/live") as socket:
                    message = await socket.receive(timeout=30)
                    # 1012 while the camera stops (its stream ended); then 1013.
                    if message.type == aiohttp.WSMsgType.CLOSE and message.data != 1012:
                        return message.data, message.extra
                await asyncio.sleep(0.5)
            raise AssertionError("garage kept streaming")

    assert run_async(closed()) == (1013, "camera garage is not running")
    with page_for(browser, hub, LAPTOP) as page:
        browser_sign_in(page, hub)
        page.goto(hub.url + "/cameras/garage")
        page.wait_for_selector("#live-state:text-matches('^Camera garage is not running')")
        assert page.is_visible("#snapshot") and page.is_hidden("#live-video")
        assert page.console_errors == []

