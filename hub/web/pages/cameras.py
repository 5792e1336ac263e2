"""Cameras: each camera's latest picture (decrypted in memory with the session's own key) and
its page. A person sees only the cameras they may see; any other name is simply not found."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import web

from hub.errors import NotSealedToYou, SegmentCorrupt
from hub.timeutil import utcnow
from hub.web.frames import first_frame_jpeg
from hub.web.ui import HUB, check_camera, render, session_of

SNAPSHOT_LOOKBACK = timedelta(hours=6)
NO_PICTURE = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 320 180">'
              b'<rect width="320" height="180" fill="#333"/><text x="160" y="95" fill="#ddd" '
              b'font-family="sans-serif" font-size="16" text-anchor="middle">no picture yet</text>'
              b'</svg>')


def latest_picture(hub, camera: str, identity, cache: dict | None = None) -> bytes | None:
    """Return a JPEG of the camera's latest segment this key can open, or None.

    The camera page asks every second and a segment lasts about ten: `cache` (the session's
    own, so no one sees a picture their key did not open) keeps the last picture by segment id,
    so a segment is decrypted and decoded once, not once a second.
    """
    now = utcnow()
    segments = hub.vault.segments(camera, now - SNAPSHOT_LOOKBACK, None)
    if cache is not None and segments and cache.get(camera, (None,))[0] == segments[-1].id:
        return cache[camera][1]
    for segment in reversed(segments[-5:]):
        try:
            plaintext = hub.vault.read(segment, identity)
        except (NotSealedToYou, SegmentCorrupt):
            continue
        picture = plaintext if segment.media_type == "image/jpeg" else first_frame_jpeg(plaintext)
        if picture is not None:
            if cache is not None and segment.id == segments[-1].id:
                cache[camera] = (segment.id, picture)
            return picture
    return None


async def snapshot(request: web.Request) -> web.Response:
    """Answer the camera's latest picture as a JPEG (404 when there is none yet)."""
    camera = request.match_info["camera"]
    check_camera(request, camera)
    session = session_of(request)
    picture = await asyncio.to_thread(latest_picture, request.app[HUB], camera, session.identity,
                                      session.pictures)
    if picture is None:
        # A placeholder, not a 404: a camera that just started is not an error for the page.
        return web.Response(body=NO_PICTURE, content_type="image/svg+xml",
                            headers={"Cache-Control": "no-store", "X-Porchlight-Picture": "none"})
    return web.Response(body=picture, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})


async def camera_page(request: web.Request) -> web.Response:
    """Show one camera: its live picture (snapshots refreshed every second as the fallback)."""
    camera = request.match_info["camera"]
    check_camera(request, camera)
    return render(request, "camera.html", camera=camera)


def setup(app: web.Application) -> None:
    """Add the camera pages."""
    app.router.add_get("/cameras/{camera}", camera_page)
    app.router.add_get("/cameras/{camera}/snapshot.jpg", snapshot)
