"""Recordings: a timeline per camera and day (coverage, events, holds), playback of any moment
and export of a range as an MP4 download.

Playback hands the page one segment at a time as fragmented MP4 for Media Source Extensions:
the segment is decrypted with the session's own key and remuxed by stream copy in memory, and
never written anywhere. A viewer's key opens only what was sealed to it (footage recorded after
the camera was shared with them); the rest answers 403 and the page says why.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import date, datetime, timedelta
from urllib.parse import quote

from aiohttp import web

from hub.cameras.events import list_events
from hub.errors import MediaError, NotSealedToYou, PorchlightError, SegmentCorrupt, UsageError
from hub.timeutil import iso, iso_second, parse_time, utcnow
from hub.vault.footage import Clip, Upload, build_clip, import_files, import_lines
from hub.vault.fragments import codec_mime, fragment_segment
from hub.vault.holds import MAX_LABEL, check_label, hold_range, owner_holds, release_label
from hub.vault.media import SEGMENT_TYPE
from hub.vault.store import Segment
from hub.web.timeline import Day, clock_of, day_of, merge_spans, parse_day
from hub.web.ui import (
    HUB,
    MEMORY_UPLOADS,
    check_camera,
    owner_only,
    read_form,
    read_memory_form,
    render,
    session_of,
    visible_cameras,
)

log = logging.getLogger(__name__)
IMPORT_PATH = "/recordings/import"
# A web import is held in memory only, never written to disk as plaintext (not even a temp
# file: the vault's promise), so it is capped; bigger files go through the CLI on the hub.
MAX_IMPORT_BYTES = 256 * 1024 * 1024
IMPORT_TOO_LARGE = (f"the file is larger than {MAX_IMPORT_BYTES // (1 << 20)} MiB: import big "
                    "files on the hub with `porchlight footage import`")
# A web export is built in memory; longer ranges are for `porchlight footage export`.
MAX_EXPORT = timedelta(minutes=15)
RECENT_DAYS = 14
# Events shorter than this would not show on a day-wide timeline: draw them this wide.
EVENT_MIN_S = 60.0
# Anything on the timeline is drawn at least 1/DOTS of the day wide (a pixel on a phone), so a
# short motion clip still shows; a click near it plays it (recordings.js snaps to footage).
DOTS = 360
NOT_YOURS = ("this footage was recorded before the camera was shared with you, so your key "
             "cannot open it")
NOT_YOURS_RANGE = ("some of this range was recorded before the camera was shared with you, so "
                   "your key cannot open it: choose a later start")


def _day(request: web.Request) -> Day:
    try:
        return parse_day(request.query.get("day"), today())
    except PorchlightError as err:
        raise web.HTTPBadRequest(text=str(err)) from None


def day_data(hub, camera: str, day: Day) -> dict:
    """Gather one camera's day: segments, coverage, events and holds (blocking: SQLite)."""
    length = day.seconds
    segments = [s for s in hub.vault.segments(camera, day.start, day.end)
                if s.media_type == SEGMENT_TYPE]
    pieces = [(day.offset(s.start), day.offset(s.end)) for s in segments]
    holds = hub.db.execute(
        'select distinct s.start, s."end" from holds h join segments s on s.id = h.segment_id '
        'where s.camera = ? and s."end" > ? and s.start < ?',
        [camera, iso(day.start), iso(day.end)]).fetchall()
    hold_pieces = [(day.offset(datetime.fromisoformat(a)), day.offset(datetime.fromisoformat(b)))
                   for a, b in holds]
    events = []
    for event in list_events(hub.vault, camera, day.start, day.end):
        start = day.offset(datetime.fromisoformat(event["start"]))
        end = day.offset(datetime.fromisoformat(event["end"]))
        events.append({"start": max(0.0, start), "width": max(EVENT_MIN_S, end - start),
                       "clock": clock_of(day, max(0.0, start)), "zones": event["zones"],
                       "at": max(0.0, start)})
    return {
        "segments": [{"id": s.id, "start": round(a, 3), "end": round(b, 3)}
                     for s, (a, b) in zip(segments, pieces, strict=True)],
        "coverage": merge_spans(pieces, length),
        "holds": merge_spans(hold_pieces, length),
        "events": events,
        "length": length,
    }


def _days_with_footage(hub, cameras: list[str]) -> dict[str, list[str]]:
    days: dict[str, list[str]] = {}
    since = utcnow() - timedelta(days=RECENT_DAYS)
    for camera in cameras:
        seen: list[str] = []
        for segment in hub.vault.segments(camera, since, None):
            if segment.media_type != SEGMENT_TYPE:
                continue
            local = segment.start.astimezone().date().isoformat()
            if local not in seen:
                seen.append(local)
        days[camera] = seen[::-1]
    return days


async def recordings(request: web.Request) -> web.Response:
    """List the cameras this person may see, with the days that hold footage."""
    return await _recordings_page(request)


async def _recordings_page(request: web.Request, *, status: int = 200,
                           imported: dict | None = None, import_error: str | None = None,
                           import_form: dict | None = None) -> web.Response:
    hub = request.app[HUB]
    names = [c.name for c in visible_cameras(request)]
    days = await asyncio.to_thread(_days_with_footage, hub, names)
    holds = []
    if session_of(request).is_owner:
        holds = await asyncio.to_thread(owner_holds, hub.vault)
    return render(request, "recordings.html", status=status, cameras=names, days=days,
                  today=today().isoformat(), owner_holds=holds, imported=imported,
                  import_error=import_error, max_import_mib=MAX_IMPORT_BYTES // (1 << 20),
                  import_form=import_form or {"camera": "", "start": ""})


@owner_only
async def import_footage(request: web.Request) -> web.Response:
    """Seal an uploaded media file into the vault for a camera from a start (`footage import`).

    The file is held in memory only (ui.read_memory_form, capped at MAX_IMPORT_BYTES) and
    sealed by the CLI's own code (hub.vault.footage.import_files), off the event loop.
    """
    form = await read_memory_form(request)
    camera = form.fields.get("camera", "")
    start_text = form.fields.get("start", "")
    shown = {"camera": camera[:64], "start": start_text[:64]}
    upload = form.files.get("file")
    hub = request.app[HUB]
    try:
        # The CLI's order: the start, then the camera's name, then the file.
        start = parse_time(start_text, "--start")
        if upload is None or not upload[0]:
            raise UsageError("choose a media file to import")
        # Only the file's own name, as the CLI would name a file in the current folder.
        name = upload[0].replace("\\", "/").rsplit("/", 1)[-1][:128] or "upload"
        notes: list[str] = []
        segments = await asyncio.to_thread(
            import_files, hub, camera, start, [Upload(name, upload[1])], False, notes)
    except PorchlightError as err:
        return await _recordings_page(request, status=400, import_error=str(err),
                                      import_form=shown)
    log.info("web: the owner imported %d segments of %s", len(segments), camera)
    first = min(s.start for s in segments)
    last = max(s.end for s in segments)
    return await _recordings_page(request, imported={
        "lines": import_lines(camera, segments, notes), "camera": camera,
        "range": f"{iso_second(first)} to {iso_second(last)}",
        "day": first.astimezone().date().isoformat()}, import_form=shown)


async def camera_day(request: web.Request) -> web.Response:
    """Show one camera's day: the timeline, the player (ready at `at` or `clock`) and export."""
    camera = request.match_info["camera"]
    check_camera(request, camera)
    moment = None
    try:
        if request.query.get("at"):
            moment = parse_time(request.query["at"][:64], "at")
            day = day_of(moment.astimezone().date()) if "day" not in request.query else _day(request)
        else:
            day = _day(request)
            if request.query.get("clock"):
                moment = day.at(request.query["clock"], "clock")
    except PorchlightError as err:
        raise web.HTTPBadRequest(text=str(err)) from None
    notice = None
    if request.query.get("held"):
        notice = f"Held {request.query['held'][:80]}: retention keeps it until you release it."
    return await _day_page(request, camera, day, moment, notice=notice)


async def _day_page(request: web.Request, camera: str, day: Day, moment: datetime | None, *,
                    status: int = 200, error: str | None = None, notice: str | None = None,
                    hold_form: dict | None = None) -> web.Response:
    hub = request.app[HUB]
    data = await asyncio.to_thread(day_data, hub, camera, day)
    holds = []
    if session_of(request).is_owner:
        holds = await asyncio.to_thread(owner_holds, hub.vault, camera)
    if moment is not None:
        start_at = min(max(0.0, day.offset(moment)), data["length"])
    elif data["segments"]:
        start_at = data["segments"][-1]["start"]
    else:
        start_at = 0.0
    return render(
        request, "recording.html", status=status, camera=camera, day=day.date.isoformat(),
        previous=(day.date - timedelta(days=1)).isoformat(),
        following=(day.date + timedelta(days=1)).isoformat(),
        zone=day.start.astimezone().strftime("%Z"), start_at=start_at,
        start_clock=clock_of(day, start_at), hours=range(0, 25, 3), dot=data["length"] / DOTS,
        segments_json=json.dumps(data["segments"]).replace("<", "\\u003c"), error=error,
        notice=notice, owner_holds=holds, max_label=MAX_LABEL,
        hold_form=hold_form or {"from": clock_of(day, start_at), "to": "", "label": ""}, **data)


@owner_only
async def hold(request: web.Request) -> web.Response:
    """Hold a range of one camera's day from retention under a label (`footage hold`)."""
    camera = request.match_info["camera"]
    check_camera(request, camera)
    form = await read_form(request)
    day = parse_day_field(form.get("day", ""))
    # Shown back in the form, capped; checked whole, so an error gives the real length.
    fields = {"from": form.get("from", "")[:16], "to": form.get("to", "")[:16],
              "label": form.get("label", "")[:MAX_LABEL * 4]}
    hub = request.app[HUB]
    try:
        label = check_label(form.get("label", ""))
        start = day.at(fields["from"], "from")
        end = day.at(fields["to"], "to")
        count = await asyncio.to_thread(hold_range, hub.vault, camera, start, end, label)
    except PorchlightError as err:
        return await _day_page(request, camera, day, None, status=400, error=str(err),
                               hold_form=fields)
    log.info("web: the owner held %d segments of %s as %r", count, camera, label)
    raise web.HTTPSeeOther(f"/recordings/{camera}?day={day.date.isoformat()}&held="
                           f"{quote(label, safe='')}")


@owner_only
async def release(request: web.Request) -> web.Response:
    """Release the owner's holds with a label (`footage release`)."""
    form = await read_form(request)
    hub = request.app[HUB]
    back = form.get("back", "")
    # Only a page of this UI: never another host, nor anything that could split a header.
    if (not back.startswith("/recordings") or "//" in back or len(back) > 256
            or any(ord(c) < 32 or ord(c) == 127 for c in back)):
        back = "/recordings"
    try:
        count = await asyncio.to_thread(release_label, hub.vault, form.get("label", ""))
    except PorchlightError as err:
        raise web.HTTPBadRequest(text=str(err)) from None
    log.info("web: the owner released %d holds", count)
    raise web.HTTPSeeOther(back)


def parse_day_field(text: str) -> Day:
    """Return the day a form names, or answer 400 with why."""
    try:
        return parse_day(text[:16], today())
    except PorchlightError as err:
        raise web.HTTPBadRequest(text=str(err)) from None


async def segment_media(request: web.Request) -> web.Response:
    """Answer one segment decrypted with the session's key, as fragmented MP4 for the player."""
    camera = request.match_info["camera"]
    check_camera(request, camera)
    segment_id = request.match_info["segment"]
    hub = request.app[HUB]
    rows = [Segment.from_row(row) for row in hub.db["segments"].rows_where(
        "id = ? and camera = ?", [segment_id[:32], camera])]
    if not rows or rows[0].media_type != SEGMENT_TYPE:
        raise web.HTTPNotFound(text="no such recording")
    identity = session_of(request).identity
    try:
        body = await asyncio.to_thread(
            lambda: fragment_segment(hub.vault.read(rows[0], identity)))
    except NotSealedToYou:
        raise web.HTTPForbidden(text=NOT_YOURS) from None
    except (SegmentCorrupt, MediaError) as err:
        raise web.HTTPInternalServerError(text=str(err)) from None
    # The codecs parameter tells the page's player what SourceBuffer to open.
    return web.Response(body=body, headers={
        "Content-Type": codec_mime(body) or "video/mp4"})


async def export(request: web.Request) -> web.Response:
    """Download a range of one camera's day as one MP4 (stream copy, like `footage export`)."""
    camera = request.match_info["camera"]
    check_camera(request, camera)
    day = _day(request)
    try:
        start = day.at(request.query.get("from", ""), "from")
        end = day.at(request.query.get("to", ""), "to")
    except PorchlightError as err:
        raise web.HTTPBadRequest(text=str(err)) from None
    if end <= start:
        raise web.HTTPBadRequest(text="to must be after from")
    if end - start > MAX_EXPORT:
        raise web.HTTPBadRequest(text=f"a download holds at most {int(MAX_EXPORT.seconds / 60)} "
                                      "minutes; use porchlight footage export for longer")
    hub = request.app[HUB]
    identity = session_of(request).identity

    def build() -> Clip:
        segments = [s for s in hub.vault.segments(camera, start, end)
                    if s.media_type == SEGMENT_TYPE]
        if not segments:
            raise PorchlightError(f"no footage of {camera} between {iso_second(start)} and "
                                  f"{iso_second(end)}")
        # The same exact cut as `porchlight footage export`: [start, end) by stream copy.
        return build_clip(hub, segments, identity, start, end)

    try:
        clip = await asyncio.to_thread(build)
    except PorchlightError as err:
        # build_clip names each segment it could not open; for a viewer that is footage from
        # before the camera was shared with them.
        if isinstance(err, NotSealedToYou) or "not sealed to this key" in str(err):
            raise web.HTTPForbidden(text=NOT_YOURS_RANGE) from None
        raise web.HTTPNotFound(text=str(err)) from None
    stamp = "%Y%m%dT%H%M%SZ"
    name = f"{camera}-{start.strftime(stamp)}-{end.strftime(stamp)}.mp4"
    return web.Response(body=clip.data, content_type="video/mp4", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Footage-Span": f"{iso(clip.start)}/{iso(clip.end)}"})


def today() -> date:
    """Return today's date in the hub's time zone."""
    return datetime.now().astimezone().date()


def setup(app: web.Application) -> None:
    """Add the recordings pages."""
    app.router.add_get("/recordings", recordings)
    app.router.add_get("/recordings/{camera}", camera_day)
    app.router.add_get("/recordings/{camera}/segments/{segment}.mp4", segment_media)
    app.router.add_get("/recordings/{camera}/export.mp4", export)
    app.router.add_post("/recordings/{camera}/hold", hold)
    app.router.add_post("/recordings/release", release)
    app[MEMORY_UPLOADS][IMPORT_PATH] = (MAX_IMPORT_BYTES, IMPORT_TOO_LARGE)
    app.router.add_post(IMPORT_PATH, import_footage)
