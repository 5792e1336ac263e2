"""Agency requests, for owners: the inbox, each request in full, and the owner's decision.

A request shows the agency, case, reason, legal basis and window; its circle and this hub's
own position drawn locally (SVG, no map tiles: the hub's position never leaves the page); the
cameras that hold footage in the window; and where it sits in the public log. Approving
re-asks the owner's passphrase (under the sign-in guard's lock and backoff, so it cannot be
used to guess or to keep the CPU busy) and then runs exactly what `porchlight requests approve`
runs (hub.neighbourhood.requests), off the event loop; a face-blur preview of a frame of each
camera is shown before anything is sealed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
from datetime import datetime

from aiohttp import web

from federation.cells import distance_m
from federation.errors import FederationError
from federation.tlog.checkpoint import parse_checkpoint
from federation.tlog.note import parse_note
from federation.tlog.proof import parse_tlog_proof
from hub.errors import PassphraseError, PorchlightError, UsageError
from hub.household import unlock_household_identity
from hub.jobs import FAILED, Job, JobBusy
from hub.neighbourhood.requests import (
    ANSWER,
    CUT,
    DENIED,
    DENIED_SILENTLY,
    PENDING,
    SEAL,
    UPLOAD,
    ProvedAgain,
    approve,
    deny,
    footage_in_window,
    get_request,
    list_requests,
    prove_answer_again,
)
from hub.neighbourhood.service import load_membership, with_gateway_client
from hub.people import HOUSEHOLD
from hub.vault.media import SEGMENT_TYPE
from hub.web.frames import first_frame_jpeg
from hub.web.pages.fork import fork_data
from hub.web.ui import GUARD, HUB, JOBS, MAX_FORM_BYTES, owner_only, read_form, render, session_of

log = logging.getLogger(__name__)
METRES_PER_DEGREE = 111_320.0
# Requests being approved or denied right now: a second click must not send a second answer.
DECIDING = web.AppKey("requests_deciding", set)
MAX_PASSPHRASE = 1024


def circle_drawing(request: dict, location) -> dict:
    """Lay out the request's circle and the hub's position in metres, north up, for an SVG."""
    radius = float(request["radius_m"] or 0.0)
    lat, lon = float(request["lat"]), float(request["lon"])
    drawing = {"radius": radius, "hub": None, "distance": None}
    extent = radius
    if location is not None:
        x = (location.lon - lon) * METRES_PER_DEGREE * math.cos(math.radians(lat))
        y = (location.lat - lat) * METRES_PER_DEGREE
        # The distance the hub checked the request by (haversine), not the drawing's estimate.
        distance = distance_m(location.lat, location.lon, lat, lon)
        # SVG's y grows downwards: north is up, so the northing is negated.
        drawing.update(hub=(round(x, 1), round(-y, 1)), distance=round(distance))
        extent = max(extent, distance)
    half = max(extent * 1.25, 20.0)
    scale = _scale_bar(half)
    drawing.update(half=round(half, 1), box=f"{-half:.1f} {-half:.1f} {2 * half:.1f} {2 * half:.1f}",
                   mark=round(half * 0.035, 1), font=round(half * 0.07, 1), scale=scale,
                   scale_x=round(-half * 0.9, 1), scale_y=round(half * 0.88, 1))
    return drawing


def _scale_bar(half: float) -> int:
    """Return a round length (m) for the drawing's scale bar, about a quarter of its width."""
    target = half / 2
    for length in (10, 20, 50, 100, 200, 500, 1000, 2000):
        if length >= target:
            return length
    return 5000


def request_page_data(hub, request_id: str) -> dict:
    """Gather one request, its drawing and the footage this hub holds in its window."""
    request = get_request(hub, request_id)
    row = next(hub.db["requests"].rows_where("id = ?", [request_id]))
    footage: dict[str, int] = {}
    drawing = None
    if request["start"]:
        footage = footage_in_window(hub, datetime.fromisoformat(request["start"]),
                                    datetime.fromisoformat(request["end"]))
    if row.get("lat") is not None:
        drawing = circle_drawing(row, hub.config.hub.location)
    for key in ("start", "end"):
        if request[key]:
            request[f"{key}_shown"] = _shown_time(request[key])
    checkpoint = (request["checkpoint"] or "").splitlines()
    return {"req": request, "footage": footage, "drawing": drawing,
            "checkpoint": checkpoint if len(checkpoint) == 3 else None,
            "answer": row.get("answer"), "answer_log": _answer_log(row)}


def _answer_log(row: dict) -> dict | None:
    """Return where the gateway put this hub's answer: its index and the checkpoint it proved."""
    if row.get("answer_index") is None or not row.get("answer_proof"):
        return None
    try:
        signed = parse_tlog_proof(row["answer_proof"]).checkpoint
        checkpoint = parse_checkpoint(parse_note(signed)[0])
    except FederationError:
        return None  # shown as "no proof kept"; `porchlight requests prove` says why
    return {"index": row["answer_index"], "origin": checkpoint.origin, "size": checkpoint.size,
            "root": base64.b64encode(checkpoint.root_hash).decode()}


def _shown_time(text: str) -> str:
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S UTC")


def preview_frame(hub, request_id: str, camera: str, identity, blur: bool) -> bytes | None:
    """Return a JPEG of the first frame of a camera's footage in the window, faces blurred if asked."""
    request = get_request(hub, request_id)
    if not request["start"]:
        return None
    start, end = datetime.fromisoformat(request["start"]), datetime.fromisoformat(request["end"])
    segments = [s for s in hub.vault.segments(camera, start, end)
                if s.media_type == SEGMENT_TYPE and s.status == "ok"]
    if not segments:
        return None
    picture = first_frame_jpeg(hub.vault.read(segments[0], identity))
    if picture is None or not blur:
        return picture
    redacted = hub.pm.hook.porchlight_redact_faces(data=picture, media_type="image/jpeg")
    if redacted is None:
        raise PorchlightError("no face redaction plugin is installed")
    return redacted[0]


@owner_only
async def requests_page(request: web.Request) -> web.Response:
    """List the agency requests: pending first, then past answers with what was sent."""
    hub = request.app[HUB]
    rows = await asyncio.to_thread(list_requests, hub)
    fork = await asyncio.to_thread(fork_data, hub)
    pending = [r for r in rows if r["status"] == PENDING]
    past = [r for r in rows if r["status"] != PENDING]
    return render(request, "requests.html", pending=pending, past=past, fork=fork)


async def _show(request: web.Request, status: int = 200, error: str | None = None,
                blur: bool = True, chosen: list[str] | None = None,
                proved: ProvedAgain | None = None) -> web.Response:
    hub = request.app[HUB]
    request_id = request.match_info["id"]
    try:
        data = await asyncio.to_thread(request_page_data, hub, request_id)
    except PorchlightError as err:
        raise web.HTTPNotFound(text=str(err)) from None
    job = request.app[JOBS].get(approval_key(request_id))
    if job is not None and job.state == FAILED and error is None and data["req"]["status"] == PENDING:
        error = job.error  # the last approval's failure, word for word
    return render(request, "request.html", status=status, error=error,
                  blur=blur, chosen=chosen if chosen is not None else sorted(data["footage"]),
                  job=job.to_json() if job is not None else None, proved=proved, **data)


@owner_only
async def request_page(request: web.Request) -> web.Response:
    """Show one request in full, with the decision forms while it is pending."""
    blur = request.query.get("blur", "yes") == "yes"
    chosen = request.query.getall("camera", None)
    return await _show(request, blur=blur, chosen=chosen)


@owner_only
async def preview(request: web.Request) -> web.Response:
    """Answer a frame of a camera's footage in the window as a JPEG, faces blurred unless asked not."""
    hub = request.app[HUB]
    request_id, camera = request.match_info["id"], request.match_info["camera"]
    blur = request.query.get("blur", "yes") == "yes"
    identity = session_of(request).identity
    try:
        picture = await asyncio.to_thread(preview_frame, hub, request_id, camera, identity, blur)
    except PorchlightError as err:
        raise web.HTTPNotFound(text=str(err)) from None
    if picture is None:
        raise web.HTTPNotFound(text="no footage of this camera in the window")
    return web.Response(body=picture, content_type="image/jpeg")


async def _decision_form(request: web.Request) -> tuple[dict[str, str], list[str]]:
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_FORM_BYTES, request.content_length)
    form = await request.post()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    cameras = [v for v in form.getall("camera", []) if isinstance(v, str)][:64]
    return fields, cameras


def _unlock_for(hub, name: str, passphrase: str):
    """Open the signed-in owner's key again: the household's, or their own."""
    if not passphrase:
        raise PassphraseError("empty passphrase")
    if name == HOUSEHOLD:
        return unlock_household_identity(hub.data, passphrase)
    return hub.people.unlock(name, passphrase)


BUSY = "This request is being decided already: wait for that to finish."


def approval_key(request_id: str) -> str:
    """Return the key of a request's approval job on the app's job board."""
    return f"approval:{request_id}"


def approval_steps(cameras: list[str], agency: str) -> list[tuple[str, str]]:
    """Return the steps of an approval as (key, label), in the order the work reaches them."""
    steps = []
    for camera in cameras:
        steps += [(f"{CUT}:{camera}", f"Cutting the clip of {camera}"),
                  (f"{SEAL}:{camera}", f"Sealing the clip of {camera} for {agency}")]
    return steps + [(UPLOAD, "Uploading the sealed files"),
                    (ANSWER, "Answering, in the public log")]


def _busy(request: web.Request, request_id: str) -> bool:
    return request_id in request.app[DECIDING] or request.app[JOBS].running(approval_key(request_id))


@owner_only
async def approve_request(request: web.Request) -> web.Response:
    """Approve a request: check the passphrase again, then start sealing, uploading and answering.

    The passphrase is checked here, so a wrong one is said at once; the rest runs as a job in
    the hub's loop (a Pi sealing several cameras' clips outlasts a browser's or a proxy's
    patience), and the request's page shows its progress and outcome.
    """
    hub = request.app[HUB]
    session = session_of(request)
    request_id = request.match_info["id"]
    form, cameras = await _decision_form(request)
    blur = form.get("blur") == "yes"
    passphrase = form.get("passphrase", "")[:MAX_PASSPHRASE]
    guard = request.app[GUARD]
    address = request.remote or "unknown"

    async def again(message: str, status: int) -> web.Response:
        return await _show(request, status=status, error=message, blur=blur, chosen=cameras)

    if not cameras:
        return await again("Choose at least one camera to send.", 400)
    # Before the passphrase: a double click costs no second scrypt unlock.
    if _busy(request, request_id):
        return await again(BUSY, 409)
    try:
        pending = await asyncio.to_thread(get_request, hub, request_id)
    except PorchlightError as err:
        raise web.HTTPNotFound(text=str(err)) from None
    if pending["status"] != PENDING:
        return await again(f"request {request_id} is {pending['status']}, not pending", 400)
    async with guard.unlocking:
        wait = guard.wait_s(session.name, address)
        if wait > 0:
            return await again(f"Too many wrong passphrases: try again in {int(wait + 0.999)} s.",
                               429)
        try:
            identity = await asyncio.to_thread(_unlock_for, hub, session.name, passphrase)
        except PassphraseError:
            guard.failed(session.name, address)
            log.info("web: wrong passphrase approving request %s", request_id)
            return await again("Wrong passphrase: nothing was sent.", 401)
    guard.succeeded(session.name, address)

    async def work(job: Job) -> None:
        nonlocal identity

        def progress(step: str, detail: str) -> None:
            job.advance(f"{step}:{detail}" if step in (CUT, SEAL) else step,
                        "" if step in (CUT, SEAL) else detail)

        async def send(client, gateway_kid):
            return await approve(hub, client, gateway_kid, request_id, identity, cameras, blur,
                                 progress)

        try:
            decision = await with_gateway_client(hub, send)
        finally:
            identity = None  # the job ends here: the owner's key goes with it
        log.info("web: request %s approved, %d clips sent", request_id, len(decision.clips))

    try:
        # Checked again: another approval may have started while this one unlocked.
        request.app[JOBS].start(approval_key(request_id),
                                approval_steps(cameras, pending["agency"]), work, busy=BUSY)
    except JobBusy as err:
        return await again(str(err), 409)
    raise web.HTTPSeeOther(f"/requests/{request_id}#approval")


@owner_only
async def approval_progress(request: web.Request) -> web.Response:
    """Answer the request's approval job (its steps, state and any error) as JSON."""
    job = request.app[JOBS].get(approval_key(request.match_info["id"]))
    if job is None:
        raise web.HTTPNotFound(text="no approval of this request was started since the hub started")
    return web.json_response(job.to_json(), headers={"Cache-Control": "no-store"})


@owner_only
async def deny_request(request: web.Request) -> web.Response:
    """Deny a request with a signed denial, or silently with nothing sent."""
    hub = request.app[HUB]
    request_id = request.match_info["id"]
    form, _ = await _decision_form(request)
    silent = form.get("silent") == "yes"

    async def work(client, gateway_kid):
        return await deny(hub, client, gateway_kid, request_id, silent)

    busy = request.app[DECIDING]
    if _busy(request, request_id):
        return await _show(request, status=409, error=BUSY)
    busy.add(request_id)
    try:
        decision = await asyncio.to_thread(asyncio.run, with_gateway_client(hub, work))
    except PorchlightError as err:
        return await _show(request, status=400, error=str(err))
    finally:
        busy.discard(request_id)
    status = DENIED_SILENTLY if decision.answer is None else DENIED
    raise web.HTTPSeeOther(f"/requests/{request_id}?decided={status.replace(' ', '-')}")


@owner_only
async def prove_request(request: web.Request) -> web.Response:
    """Fetch the log's latest checkpoint and prove again that this hub's answer is in it."""
    hub = request.app[HUB]
    request_id = request.match_info["id"]
    await read_form(request)  # the CSRF token was checked on the way in
    membership = await asyncio.to_thread(load_membership, hub.data)
    if membership is None:
        return await _show(request, status=400, error="this hub is not a member of a gateway")

    async def work(client, gateway_kid):
        return await prove_answer_again(hub, client, membership.gateway_jwk, request_id)

    try:
        proved = await with_gateway_client(hub, work)
    except UsageError as err:
        return await _show(request, status=400, error=str(err))
    except PorchlightError as err:
        log.warning("web: the answer to request %s was not proved again: %s", request_id, err)
        return await _show(request, status=502, error=str(err))
    return await _show(request, proved=proved)


def setup(app: web.Application) -> None:
    """Add the agency request pages."""
    app[DECIDING] = set()
    app.router.add_get("/requests", requests_page)
    app.router.add_get("/requests/{id}", request_page)
    app.router.add_get("/requests/{id}/frames/{camera}.jpg", preview)
    app.router.add_post("/requests/{id}/approve", approve_request)
    app.router.add_get("/requests/{id}/approval", approval_progress)
    app.router.add_post("/requests/{id}/prove", prove_request)
    app.router.add_post("/requests/{id}/deny", deny_request)
