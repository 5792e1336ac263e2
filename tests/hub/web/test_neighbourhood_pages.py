"""Agency requests and the neighbourhood in the owner's web UI, in real Chromium, against real
processes: a registry authority, an agency, a gateway, the owner's `porchlight run` (HTTPS) and
a neighbour's. An approval clicked through the UI reaches the agency, which decrypts the clip;
a photo posted with its preview has the face blurred in the preview and in every shared copy; a
viewer cannot reach the decisions; each page is clean, local and screenshotted."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import av
import cv2
import numpy as np
import pytest

from plugins.cameras.scene import encode_frames
from plugins.detectors.redact import default_face_detector
from tests.hub.neighbourhood.test_neighbourhood import Running, _porchlight, _wait_for
from tests.hub.web.conftest import (
    LAPTOP,
    PASSPHRASE,
    PHONE,
    VIEWER,
    VIEWER_PASS,
    WebHub,
    add_viewer,
    browser_sign_in,
    csrf_of,
    page_for,
    run_async,
    shots_dir,
    sign_in,
)
from tests.hub.web.test_browser import _serious_axe_violations

CENTRE = (51.5008, -0.1243)  # 24 m from the hubs (conftest's 51.5007,-0.1246)
AGENCY = "Metro Police, Precinct 9"
REFUSED = "Failed to load resource: the server responded with a status of {} ({})"


def _face_frames(seconds: int, fps: int):
    from skimage import data

    face = data.astronaut()  # RGB, 512x512: a real face
    for i in range(seconds * fps):
        yield np.roll(face, (i % 10) * 2, axis=1)  # a little movement, so it is video


def _faces(jpeg: bytes) -> int:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return len(default_face_detector()(image))


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An authority, an agency, a gateway with the registry, and two member hubs: `maple`
    (the owner's web UI, with 20 s of a face on `porch` in the request window) and `oak`."""
    root = tmp_path_factory.mktemp("neighbourhood")
    authority, agency, gw = root / "authority", root / "agency", root / "gateway"
    out = _porchlight("registry", "init", "--data", authority, "--name", "Elm Street Oversight Board")
    authority_fp = out.stdout.strip().rsplit(": ", 1)[1]
    _porchlight("agency", "init", "--data", agency, "--name", AGENCY)
    _porchlight("registry", "add", "--data", authority, "--card", agency / "agency.json",
                "--jurisdiction", f"{CENTRE[0]},{CENTRE[1]},8000", "--since", "2025-03-01",
                "--contact", "precinct9@example.org")
    _porchlight("gateway", "init", "--data", gw, "--name", "Elm Street",
                "--registry-key", authority_fp)
    gateway = Running("gateway", "run", "--data", gw, "--listen", "127.0.0.1:0")
    url = gateway.ready.split(" on ", 1)[1].split(" as ")[0]
    _porchlight("registry", "publish", "--data", authority, "--gateway", url)

    start = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    clip = root / "face.mp4"
    encode_frames(clip, _face_frames(10, 5), fps=5)
    maple = WebHub(root / "maple")
    oak = WebHub(root / "oak", cameras=())
    _porchlight("footage", "import", "--data", maple.root, "--camera", "porch", "--start",
                (start + timedelta(minutes=10)).isoformat(), clip)
    for hub in (maple, oak):
        code = _porchlight("gateway", "invite", "--data", gw).stdout.strip()
        _porchlight("join", "--data", hub.root, url, code, "--registry-key", authority_fp)
    maple.start()
    oak.start("--http")
    run_async(add_viewer(maple, VIEWER, VIEWER_PASS, "porch"))
    yield {"url": url, "agency": agency, "maple": maple, "oak": oak, "clip": clip,
           "start": start, "end": start + timedelta(minutes=45), "gateway_dir": gw,
           "gateway": gateway, "authority_fp": authority_fp}
    for hub in (maple, oak):
        hub.stop()
    gateway.stop()
    assert "Traceback" not in "".join(maple.log), "".join(maple.log)[-4000:]


def _ask(world, case: str) -> str:
    """Send an agency request for the window around maple; wait until maple holds it."""
    out = _porchlight("agency", "request", "--data", world["agency"], "--gateway", world["url"],
                      "--case", case, "--reason", "Package theft on Elm Street",
                      "--from", world["start"].isoformat(), "--to", world["end"].isoformat(),
                      "--lat", str(CENTRE[0]), "--lon", str(CENTRE[1]), "--radius-m", "300")
    request_id = out.stdout.strip().splitlines()[-1]
    assert _wait_for(lambda: _status(world, request_id) == "pending", timeout=30), request_id
    return request_id


def _requests(world) -> dict[str, dict]:
    out = _porchlight("requests", "list", "--data", world["maple"].root, "--json").stdout
    return {r["id"]: r for r in json.loads(out)["requests"]}


def _status(world, request_id: str) -> str | None:
    found = _requests(world).get(request_id)
    return found["status"] if found else None


def _agency_status(world, request_id: str) -> dict:
    # "--": a request id may begin with "-" (base64url), which argparse takes for an option.
    return json.loads(_porchlight("agency", "status", "--data", world["agency"], "--gateway",
                                  world["url"], "--", request_id).stdout)


def _sign_in(page, hub: WebHub, name: str = "owner", passphrase: str = PASSPHRASE) -> None:
    """Sign in; the home page it lands on is test_browser.py's to check."""
    # Generous waits: the machine may be busy; no test here measures speed.
    page.set_default_timeout(120_000)
    browser_sign_in(page, hub, name, passphrase)
    page.wait_for_load_state("networkidle")
    page.console_errors.clear()


def _clean(page, hub: WebHub, refused: tuple[str, ...] = ()) -> None:
    """No console error but the hub's refusals expected here; no request to another host."""
    page.wait_for_load_state("networkidle")
    assert [e for e in page.console_errors if e not in refused] == []
    assert page.hosts == {hub.url.split("://", 1)[1]}
    page.console_errors.clear()


def _shots(page, hub: WebHub, path: str, slug: str) -> None:
    for name, viewport in (("phone", PHONE), ("laptop", LAPTOP)):
        page.set_viewport_size(viewport)
        page.goto(hub.url + path)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=shots_dir() / f"owner-{slug}-{name}.png", full_page=True)
    _clean(page, hub)


def _approve(page, passphrase: str) -> str:
    """Type the passphrase and approve; wait out the backoff a wrong one started, if shown;
    follow the approval's progress until the page shows its outcome."""
    for _ in range(4):
        page.fill("#approve-pass", passphrase)
        with page.expect_navigation():
            page.click("#approve", no_wait_after=True)
        page.wait_for_load_state("networkidle")
        error = page.locator("#error")
        if not error.count():
            # Decrypting, blurring and sealing take a while on a loaded machine: no speed is
            # tested. The page follows the job's steps and then loads the outcome.
            page.wait_for_url(re.compile(r".*\?decided=approved$"), timeout=180_000)
            page.wait_for_load_state("networkidle")
            return page.url
        wait = re.fullmatch(r"Too many wrong passphrases: try again in (\d+) s\.", error.inner_text())
        if wait is None:
            return page.url
        time.sleep(int(wait.group(1)))
    raise AssertionError("the approval never went through")


def test_an_approval_clicked_through_reaches_the_agency_blurred(browser, world, tmp_path):
    maple = world["maple"]
    request_id = _ask(world, "2026-PD9-0412")
    with page_for(browser, maple) as page:
        _sign_in(page, maple)
        assert page.locator("#pending").inner_text().startswith("1 pending agency request")
        page.click("nav >> text=Requests")
        page.click(f"a[href='/requests/{request_id}']")
        page.wait_for_url(f"{maple.url}/requests/{request_id}")
        facts = page.locator("dl.facts").inner_text()
        for expected in (AGENCY, "2026-PD9-0412", "Package theft on Elm Street", "voluntary",
                         world["start"].strftime("%Y-%m-%d %H:%M:%S UTC")):
            assert expected in facts, expected
        assert re.search(r"in the public log at index \d+, proved against the checkpoint of .+ "
                         r"at tree size \d+, root hash \S+=", page.locator("#log").inner_text())
        # The circle and this hub, drawn on the page: no map tiles, nothing fetched.
        assert page.locator("svg.area-map circle.area-circle").count() == 1
        assert page.locator("svg.area-map circle.area-hub").count() == 1
        assert page.locator("figure.area figcaption").inner_text().startswith(
            "This hub is 24 m from the centre of the 300 m circle.")
        assert page.locator("#footage").inner_text().startswith("porch: ")
        # The face-blur preview, before anything is sealed.
        page.wait_for_function("[...document.querySelectorAll('.preview img')]"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        frame = f"{maple.url}/requests/{request_id}/frames/porch.jpg"
        assert _faces(page.request.get(frame + "?blur=no").body()) >= 1
        assert _faces(page.request.get(frame + "?blur=yes").body()) == 0
        assert _serious_axe_violations(page) == []
        _clean(page, maple)
        _shots(page, maple, f"/requests/{request_id}", "request-pending")
        page.set_viewport_size(LAPTOP)

        # A wrong passphrase: the exact error, nothing sealed or sent.
        page.fill("#approve-pass", "not the passphrase")
        page.click("#approve")
        assert page.locator("#error").inner_text() == "Wrong passphrase: nothing was sent."
        assert _status(world, request_id) == "pending"
        assert _agency_status(world, request_id)["approved"] == 0
        _clean(page, maple, refused=(REFUSED.format(401, "Unauthorized"),
                                     REFUSED.format(429, "Too Many Requests")))

        landed = _approve(page, PASSPHRASE)
        assert landed == f"{maple.url}/requests/{request_id}?decided=approved"
        assert page.locator("#status").inner_text().startswith("Status: approved")
        assert re.fullmatch(rf"porch: \d+ bytes sealed to {AGENCY}, SHA-256 [0-9a-f]{{64}}",
                            page.locator("#sent li").inner_text())
        # The finished job's steps and the answer's place in the log, accessible too.
        assert page.locator("#approval h2").inner_text() == "Approved and sent"
        assert page.locator("#answer-log").inner_text().startswith(
            "This hub's answer is in the public log at index ")
        assert _serious_axe_violations(page) == []
        _clean(page, maple, refused=(REFUSED.format(429, "Too Many Requests"),))
        _shots(page, maple, "/requests", "requests")

    assert _status(world, request_id) == "approved"
    status = _agency_status(world, request_id)
    # oak holds no footage in the window, so it never shows the request to its owner.
    assert (status["approved"], status["denied"]) == (1, 0)
    fetched = tmp_path / "evidence"
    _porchlight("agency", "fetch", "--data", world["agency"], "--gateway", world["url"],
                "--out", fetched, "--", request_id)
    manifest = json.loads((fetched / "manifest.json").read_text())
    [clip] = manifest["clips"]
    assert clip["status"] == "fetched" and clip["camera"] == "porch"
    received, recorded = _frames(fetched / clip["file"]), _frames(world["clip"])
    assert len(received) == len(recorded)
    # What was sent is what the preview showed: the face blurred.
    assert _faces(cv2.imencode(".jpg", recorded[0])[1].tobytes()) >= 1
    assert _faces(cv2.imencode(".jpg", received[0])[1].tobytes()) == 0


def test_a_viewer_cannot_reach_the_decisions_and_an_owner_denies(browser, world):
    maple = world["maple"]
    request_id = _ask(world, "2026-PD9-0413")
    silent_id = _ask(world, "2026-PD9-0414")

    async def as_viewer() -> list[tuple[str, int]]:
        answers = []
        async with maple.client() as sam:
            assert (await sign_in(sam, VIEWER, VIEWER_PASS)).status == 303
            token = await csrf_of(sam, "/")
            for path in ("/requests", f"/requests/{request_id}",
                         f"/requests/{request_id}/frames/porch.jpg",
                         f"/requests/{request_id}/approval"):
                async with sam.get(path) as reply:
                    answers.append((path, reply.status))
            for path, form in ((f"/requests/{request_id}/approve",
                                {"camera": "porch", "blur": "no", "passphrase": VIEWER_PASS}),
                               (f"/requests/{request_id}/approve",
                                {"camera": "porch", "blur": "no", "passphrase": PASSPHRASE}),
                               (f"/requests/{request_id}/deny", {"silent": "yes"}),
                               # Nor anything else an owner decides here or in camera settings.
                               ("/neighbourhood/preview", {"category": "safety", "text": "x"}),
                               ("/settings/cameras", {"name": "cam2", "kind": "synthetic"}),
                               ("/settings/cameras/discover", {}),
                               ("/settings/cameras/porch/rename", {"new_name": "door"}),
                               ("/settings/cameras/porch/remove", {}),
                               ("/settings/cameras/porch/motion", {"areas": ""}),
                               ("/settings/retention", {"max_age_days": "1"})):
                async with sam.post(path, data={"csrf": token, **form}) as reply:
                    answers.append((path, reply.status))
            for path in ("/settings/cameras", "/settings/cameras/porch/motion"):
                async with sam.get(path) as reply:
                    answers.append((path, reply.status))
        return answers

    config = (maple.root / "config.toml").read_bytes()
    answers = run_async(as_viewer())
    assert {status for _, status in answers} == {403}, answers
    assert _status(world, request_id) == "pending"
    assert (maple.root / "config.toml").read_bytes() == config
    with page_for(browser, maple) as page:
        _sign_in(page, maple, VIEWER, VIEWER_PASS)
        assert page.locator("nav >> text=Requests").count() == 0
        assert page.locator("#pending").count() == 0
        assert page.goto(f"{maple.url}/requests/{request_id}").status == 403
        assert page.goto(f"{maple.url}/neighbourhood").status == 200
        assert page.locator("#post-form").count() == 0

    with page_for(browser, maple) as page:
        _sign_in(page, maple)
        page.goto(f"{maple.url}/requests/{request_id}")
        page.click("#deny")
        page.wait_for_url(f"{maple.url}/requests/{request_id}?decided=denied")
        assert page.locator("#sent").inner_text() == "A signed denial; no footage."
        page.goto(f"{maple.url}/requests/{silent_id}")
        page.click("#deny-silently")
        page.wait_for_url(f"{maple.url}/requests/{silent_id}?decided=denied-silently")
        assert page.locator("#sent").inner_text() == "Nothing."
        _clean(page, maple)
    assert _status(world, request_id) == "denied"
    assert _status(world, silent_id) == "denied silently"
    assert _agency_status(world, request_id)["denied"] == 1
    assert _agency_status(world, silent_id)["denied"] == 0


def _attachments(hub: WebHub) -> dict[str, bytes]:
    folder = hub.root / "alerts" / "attachments"
    return {p.name: p.read_bytes() for p in folder.glob("*")} if folder.exists() else {}


def _alert_count(hub: WebHub) -> int:
    return len(json.loads(_porchlight("alerts", "list", "--data", hub.root, "--json").stdout))


def test_a_photo_is_posted_with_its_face_blurred_in_the_preview_and_every_copy(
        browser, world, tmp_path):
    from skimage import data

    maple, oak = world["maple"], world["oak"]
    _porchlight("agency", "announce", "--data", world["agency"], "--gateway", world["url"],
                "--text", "Road closed on Elm Street until 6 pm", "--category", "safety",
                "--lat", str(CENTRE[0]), "--lon", str(CENTRE[1]), "--radius-m", "500")
    photo = tmp_path / "doorbell.png"
    photo.write_bytes(cv2.imencode(".png", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1])
    assert _faces(photo.read_bytes()) >= 1
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_bytes(b"just some text, not a picture")

    with page_for(browser, maple) as page:
        _sign_in(page, maple)
        page.click("nav >> text=Neighbourhood")
        badge = page.locator(".badge-law")
        for _ in range(60):  # the announcement arrives over the gateway's stream
            if badge.count():
                break
            page.wait_for_timeout(500)
            page.reload()
        assert badge.first.inner_text() == f"verified law enforcement: {AGENCY}"
        assert "connected" in page.locator("#gateway-state").inner_text()

        # Not a picture: the exact error, and nothing stored or queued.
        before, alerts = _attachments(maple), _alert_count(maple)
        page.fill("#alert-text", "Someone trying car doors on Elm Street")
        page.set_input_files("#alert-photo", not_a_photo)
        page.click("#preview")
        assert page.locator("#error").inner_text() == "the photo must be a JPEG or PNG file"
        assert (_attachments(maple), _alert_count(maple)) == (before, alerts)
        _clean(page, maple, refused=(REFUSED.format(400, "Bad Request"),))

        page.fill("#alert-text", "Someone trying car doors on Elm Street")
        page.select_option("#alert-category", "suspicious")
        page.set_input_files("#alert-photo", photo)
        page.click("#preview")
        page.wait_for_selector("#draft-photo")
        assert page.locator("#faces").inner_text().startswith("1 face blurred")
        page.wait_for_function("document.getElementById('draft-photo').naturalWidth > 0")
        preview = page.request.get(maple.url + page.get_attribute("#draft-photo", "src")).body()
        assert _faces(preview) == 0
        # Nothing has left, or even been stored, before "Post".
        assert (_attachments(maple), _alert_count(maple)) == (before, alerts)
        assert _serious_axe_violations(page) == []
        _clean(page, maple)
        for name, viewport in (("phone", PHONE), ("laptop", LAPTOP)):
            page.set_viewport_size(viewport)
            page.screenshot(path=shots_dir() / f"owner-alert-preview-{name}.png", full_page=True)

        page.click("#post")
        page.wait_for_url(maple.url + "/neighbourhood?posted=1")
        own = page.locator(".alert", has=page.locator(".badge-own"))
        assert "Someone trying car doors on Elm Street" in own.first.inner_text()
        page.wait_for_function("[...document.querySelectorAll('img.alert-photo')]"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        _clean(page, maple)
        _shots(page, maple, "/neighbourhood", "neighbourhood")

    # The shared copy is the previewed one, on this hub and at the neighbour's through the gateway.
    shared = {k: v for k, v in _attachments(maple).items() if k not in before}
    assert list(shared.values()) == [preview]
    [digest] = shared
    received = _wait_for(lambda: (oak.root / "alerts" / "attachments" / digest).exists(), timeout=30)
    assert received
    copy = (oak.root / "alerts" / "attachments" / digest).read_bytes()
    assert copy == preview and _faces(copy) == 0


def test_bad_posts_are_refused_with_their_error_and_nothing_is_kept(world):
    maple = world["maple"]
    before, alerts = _attachments(maple), _alert_count(maple)
    photo = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes()
    cases = [
        ({"category": "burglary", "text": "x"}, None, "Choose one of the categories."),
        ({"category": "safety", "text": "   "}, None, "Say what happened: the text is empty."),
        ({"category": "safety", "text": "x" * 2001}, None,
         "The text has 2001 characters; the limit is 2000."),
        ({"category": "safety", "text": "x", "event": "some-event"}, photo,
         "Share a photo or an event, not both."),
        ({"category": "safety", "text": "x", "event": "no-such-event"}, None,
         "no event 'no-such-event' on this hub (see `porchlight events list`)"),
    ]

    async def post_each() -> list[tuple[int, str]]:
        shown = []
        async with maple.client() as owner:
            await sign_in(owner, "owner", PASSPHRASE)
            token = await csrf_of(owner, "/neighbourhood")
            for fields, upload, _ in cases:
                form = aiohttp.FormData()
                form.add_field("csrf", token)
                for name, value in fields.items():
                    form.add_field(name, value)
                if upload is not None:
                    form.add_field("photo", upload, filename="p.jpg", content_type="image/jpeg")
                async with owner.post("/neighbourhood/preview", data=form) as reply:
                    error = re.search(r'id="error">([^<]*)<', await reply.text())
                    shown.append((reply.status, html.unescape(error.group(1))))
        return shown

    assert run_async(post_each()) == [(400, error) for _, _, error in cases]
    assert (_attachments(maple), _alert_count(maple)) == (before, alerts)


def test_an_upload_over_the_cap_is_refused_and_nothing_is_kept(world):
    maple = world["maple"]
    before, alerts = _attachments(maple), _alert_count(maple)

    async def post_big() -> tuple[int, str]:
        async with maple.client() as owner:
            await sign_in(owner, "owner", PASSPHRASE)
            token = await csrf_of(owner, "/neighbourhood")
            form = aiohttp.FormData()
            for name, value in (("csrf", token), ("category", "safety"), ("text", "big")):
                form.add_field(name, value)
            form.add_field("photo", b"\xff\xd8\xff" + bytes(9 * 1024 * 1024), filename="big.jpg",
                           content_type="image/jpeg")
            async with owner.post("/neighbourhood/preview", data=form) as reply:
                return reply.status, await reply.text()

    status, text = run_async(post_big())
    assert status == 413, text
    assert text.startswith("Maximum request body size 8454144 exceeded")
    assert (_attachments(maple), _alert_count(maple)) == (before, alerts)


BUSY = "This request is being decided already: wait for that to finish."


def _error_of(text: str) -> str:
    found = re.search(r'id="error">([^<]*)<', text)
    return html.unescape(found.group(1)) if found else ""


async def _job(owner, request_id: str) -> dict:
    async with owner.get(f"/requests/{request_id}/approval") as reply:
        assert reply.status == 200, await reply.text()
        return await reply.json()


async def _job_until(owner, request_id: str, done) -> dict:
    """Poll the approval's JSON until `done(job)`; generous, no speed is tested."""
    for _ in range(1200):
        job = await _job(owner, request_id)
        if done(job):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"the approval never got there: {job}")


def test_an_approval_runs_as_a_job_with_progress_and_a_second_approve_is_refused(world):
    maple, gateway = world["maple"], world["gateway"]
    request_id = _ask(world, "2026-PD9-0415")

    async def approve_while_the_gateway_stalls() -> dict:
        async with maple.client() as owner:
            await sign_in(owner, "owner", PASSPHRASE)
            token = await csrf_of(owner, f"/requests/{request_id}")
            form = {"csrf": token, "camera": "porch", "blur": "no", "passphrase": PASSPHRASE}
            # The gateway is stopped (SIGSTOP), so the approval waits at its upload step for as
            # long as the test needs to look at it; nothing is timed.
            os.kill(gateway.proc.pid, signal.SIGSTOP)
            try:
                async with owner.post(f"/requests/{request_id}/approve", data=form,
                                      allow_redirects=False) as reply:
                    assert reply.status == 303, _error_of(await reply.text())
                    assert reply.headers["Location"] == f"/requests/{request_id}#approval"
                job = await _job_until(owner, request_id,
                                       lambda j: j["steps"][2]["state"] == "active")
                running = dict(job, page=await (await owner.get(f"/requests/{request_id}")).text())
                second = []
                for path, fields in ((f"/requests/{request_id}/approve", form),
                                     (f"/requests/{request_id}/deny",
                                      {"csrf": token, "silent": "yes"})):
                    async with owner.post(path, data=fields, allow_redirects=False) as reply:
                        second.append((reply.status, _error_of(await reply.text())))
                running["second"] = second
            finally:
                os.kill(gateway.proc.pid, signal.SIGCONT)
            running["done"] = await _job_until(owner, request_id, lambda j: j["state"] != "running")
            return running

    seen = run_async(approve_while_the_gateway_stalls())
    assert [(s["key"], s["label"], s["state"]) for s in seen["steps"]] == [
        ("cut:porch", "Cutting the clip of porch", "done"),
        ("seal:porch", f"Sealing the clip of porch for {AGENCY}", "done"),
        ("upload", "Uploading the sealed files", "active"),
        ("answer", "Answering, in the public log", "waiting")]
    assert seen["state"] == "running" and seen["steps"][2]["detail"] == "1 of 2"
    # The page shows the steps and follows them (static/jobs.js); no decision form meanwhile.
    assert f'data-job="/requests/{request_id}/approval"' in seen["page"]
    assert 'id="approve-form"' not in seen["page"] and 'id="deny"' not in seen["page"]
    assert seen["second"] == [(409, BUSY), (409, BUSY)]
    done = seen["done"]
    assert (done["state"], done["error"]) == ("done", None)
    assert done["history"] == ["cut:porch", "seal:porch", "upload 1 of 2", "upload 2 of 2",
                               "answer"]
    assert _status(world, request_id) == "approved"
    assert _agency_status(world, request_id)["approved"] == 1


def _holds_of(hub: WebHub, request_id: str) -> int:
    with sqlite3.connect(hub.root / "porchlight.db") as db:
        return db.execute("select count(*) from holds where reference = ?",
                          [request_id]).fetchone()[0]


def test_an_approval_cut_short_by_the_hub_stopping_holds_and_sends_nothing(world, tmp_path):
    # A hub of its own (maple's neighbour, with the same footage), since this one is stopped.
    birch = WebHub(tmp_path / "birch")
    _porchlight("footage", "import", "--data", birch.root, "--camera", "porch", "--start",
                (world["start"] + timedelta(minutes=10)).isoformat(), world["clip"])
    code = _porchlight("gateway", "invite", "--data", world["gateway_dir"]).stdout.strip()
    _porchlight("join", "--data", birch.root, world["url"], code, "--registry-key",
                world["authority_fp"])
    birch.start()
    gateway = world["gateway"]

    def status() -> str | None:
        out = _porchlight("requests", "list", "--data", birch.root, "--json").stdout
        return {r["id"]: r["status"] for r in json.loads(out)["requests"]}.get(request_id)

    async def start_and_stall() -> int:
        async with birch.client() as owner:
            await sign_in(owner, "owner", PASSPHRASE)
            token = await csrf_of(owner, f"/requests/{request_id}")
            async with owner.post(f"/requests/{request_id}/approve", allow_redirects=False,
                                  data={"csrf": token, "camera": "porch", "blur": "no",
                                        "passphrase": PASSPHRASE}) as reply:
                assert reply.status == 303
            await _job_until(owner, request_id, lambda j: j["steps"][2]["state"] == "active")
        return _holds_of(birch, request_id)

    try:
        request_id = _ask(world, "2026-PD9-0421")
        assert _wait_for(lambda: status() == "pending", timeout=30)
        os.kill(gateway.proc.pid, signal.SIGSTOP)
        try:
            held_while_uploading = run_async(start_and_stall())
            birch.stop()  # the job is cancelled mid-upload
        finally:
            os.kill(gateway.proc.pid, signal.SIGCONT)
    finally:
        birch.stop()
    assert held_while_uploading > 0
    assert _holds_of(birch, request_id) == 0
    assert status() == "pending"
    assert _agency_status(world, request_id)["approved"] == 0
    assert "Traceback" not in "".join(birch.log), "".join(birch.log)[-4000:]


def test_a_failed_approval_shows_its_exact_error_and_sends_nothing(world):
    maple = world["maple"]
    request_id = _ask(world, "2026-PD9-0416")

    async def approve_a_camera_without_footage() -> tuple[dict, str]:
        async with maple.client() as owner:
            await sign_in(owner, "owner", PASSPHRASE)
            token = await csrf_of(owner, f"/requests/{request_id}")
            # A forged choice: the page offers only cameras with footage in the window.
            async with owner.post(f"/requests/{request_id}/approve", allow_redirects=False,
                                  data={"csrf": token, "camera": "garage", "blur": "no",
                                        "passphrase": PASSPHRASE}) as reply:
                assert reply.status == 303
            job = await _job_until(owner, request_id, lambda j: j["state"] != "running")
            async with owner.get(f"/requests/{request_id}") as page:
                return job, await page.text()

    job, page = run_async(approve_a_camera_without_footage())
    error = "no footage of garage in the request's window (cameras with footage: porch)"
    assert (job["state"], job["error"]) == ("failed", error)
    assert _error_of(page) == error
    assert 'id="approve-form"' in page  # the owner may approve again
    assert _status(world, request_id) == "pending"
    assert _agency_status(world, request_id)["approved"] == 0
    with sqlite3.connect(maple.root / "porchlight.db") as db:
        assert db.execute("select count(*) from holds where reference = ?",
                          [request_id]).fetchone() == (0,)


def _prove_json(world, request_id: str) -> dict:
    return json.loads(_porchlight("requests", "prove", "--data", world["maple"].root, "--",
                                  request_id).stdout)


def test_the_answer_s_place_in_the_log_is_shown_and_proved_again(world):
    maple = world["maple"]
    request_id = _ask(world, "2026-PD9-0417")
    pending_id = _ask(world, "2026-PD9-0418")

    async def deny_then_prove() -> dict:
        shown = {}
        async with maple.client() as owner:
            await sign_in(owner, "owner", PASSPHRASE)
            token = await csrf_of(owner, f"/requests/{request_id}")
            async with owner.post(f"/requests/{request_id}/deny",
                                  data={"csrf": token, "silent": "no"}) as reply:
                shown["answered"] = await reply.text()
            # More entries after the answer: the fresh proof is against a larger log.
            _ask(world, "2026-PD9-0419")
            async with owner.post(f"/requests/{request_id}/prove", data={"csrf": token}) as reply:
                shown["proved"] = (reply.status, await reply.text())
            async with owner.post(f"/requests/{request_id}/prove", data={}) as reply:
                shown["forged"] = reply.status
            async with owner.post(f"/requests/{pending_id}/prove",
                                  data={"csrf": token}) as reply:
                shown["unanswered"] = (reply.status, _error_of(await reply.text()))
        async with maple.client() as sam:
            await sign_in(sam, VIEWER, VIEWER_PASS)
            token = await csrf_of(sam, "/")
            async with sam.post(f"/requests/{request_id}/prove", data={"csrf": token}) as reply:
                shown["viewer"] = reply.status
        return shown

    shown = run_async(deny_then_prove())
    proof = _prove_json(world, request_id)
    index = proof["log_index"]
    page = html.unescape(re.sub(r"<[^>]+>", "", shown["answered"]))
    answer_log = re.search(r"This hub's answer is in the public log at index (\d+), proved against "
                           r"the checkpoint of (\S+) at tree size (\d+), root hash (\S+=)", page)
    assert answer_log, page
    assert int(answer_log.group(1)) == index
    status, text = shown["proved"]
    assert status == 200, _error_of(text)
    result = html.unescape(re.sub(r"<[^>]+>", "", text))
    again = re.search(r"Proved again just now: the answer is entry (\d+) of the public log at "
                      r"tree size (\d+) \(root hash (\S+=)\), a continuation of the log at size "
                      r"(\d+) it was first proved in\.", result)
    assert again, result
    assert int(again.group(1)) == index
    assert int(again.group(2)) > int(again.group(4)) == int(answer_log.group(3))
    assert (shown["forged"], shown["viewer"]) == (403, 403)
    assert shown["unanswered"] == (400, f"this hub sent no answer to request {pending_id!r}")


def test_the_requests_list_and_the_feed_update_live(browser, world):
    maple = world["maple"]
    with page_for(browser, maple) as page:
        _sign_in(page, maple)
        page.goto(maple.url + "/requests")
        page.wait_for_load_state("networkidle")
        # A mark on this document: still there afterwards means no reload, the list changed live.
        page.evaluate("window.stillHere = true")
        request_id = _ask(world, "2026-PD9-0420")
        page.wait_for_selector(f"#inbox a[href='/requests/{request_id}']", timeout=60_000)
        assert page.evaluate("window.stillHere") is True

        page.goto(maple.url + "/neighbourhood")
        page.wait_for_load_state("networkidle")
        page.evaluate("window.stillHere = true")
        # Typing a draft: the feed updates, the draft is kept.
        page.fill("#alert-text", "a draft being typed")
        text = f"Water main repair on Elm Street, {time.time_ns()}"
        _porchlight("agency", "announce", "--data", world["agency"], "--gateway", world["url"],
                    "--text", text, "--category", "safety", "--lat", str(CENTRE[0]),
                    "--lon", str(CENTRE[1]), "--radius-m", "500")
        page.locator("#feed", has_text=text).wait_for(timeout=60_000)
        assert page.evaluate("window.stillHere") is True
        assert page.input_value("#alert-text") == "a draft being typed"
        _clean(page, maple)
