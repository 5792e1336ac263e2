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


def latest_picture(hub, camera: str, identity) -> bytes | None:
    """Return a JPEG of the camera's latest segment this key can open, or None."""
    now = utcnow()
    segments = hub.vault.segments(camera, now - SNAPSHOT_LOOKBACK, None)
    for segment in reversed(segments[-5:]):
        try:
            plaintext = hub.vault.read(segment, identity)
        except (NotSealedToYou, SegmentCorrupt):
            continue
        if segment.media_type == "image/jpeg":
            return plaintext
        picture = first_frame_jpeg(plaintext)
        if picture is not None:
            return picture
    return None


async def snapshot(request: web.Request) -> web.Response:
    """Answer the camera's latest picture as a JPEG (404 when there is none yet)."""
    camera = request.match_info["camera"]
    check_camera(request, camera)
    session = session_of(request)
    picture = await asyncio.to_thread(latest_picture, request.app[HUB], camera, session.identity)
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
