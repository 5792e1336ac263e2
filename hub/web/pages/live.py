"""Live view: a camera's fragmented MP4 over an authenticated WebSocket, into the page's MSE.

The socket speaks one way. The hub sends a text message with the stream's media type (empty
when the browser cannot be told the codec: the page then shows snapshots), then the init
segment and the fragments as binary messages. It closes with 1012 when the camera's stream ends
or restarts (the page reconnects), with 1013 when the camera is not running or has as many
viewers as it serves, and with 1008 when the session ends. Only a session that
may see the camera gets a socket, and only from a page of the hub itself (its Origin).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, web

from hub.cameras.live import ENDED, LiveBusy
from hub.web.ui import HUB, SESSIONS, check_camera, session_of

log = logging.getLogger(__name__)
SESSION_CHECK_S = 5.0


def same_origin(request: web.Request) -> bool:
    """Say whether a WebSocket handshake comes from a page of this hub (browsers always send Origin)."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    parts = urlsplit(origin)
    return parts.netloc == request.host and parts.scheme == request.scheme


async def live_socket(request: web.Request) -> web.StreamResponse:
    """Stream a camera live to a page that may see it."""
    camera = request.match_info["camera"]
    check_camera(request, camera)
    if not same_origin(request):
        raise web.HTTPForbidden(text="cross-origin request refused")
    session = session_of(request)
    streams = getattr(request.app[HUB], "live", None)
    stream = streams.get(camera) if streams is not None else None
    socket = web.WebSocketResponse(heartbeat=30.0, max_msg_size=1024)
    viewer = None
    try:
        viewer = stream.subscribe(asyncio.get_running_loop()) if stream is not None else None
    except LiveBusy as err:
        busy = str(err)
    else:
        busy = f"camera {camera} is not running"
    if viewer is None:
        # Answered on the socket, not by refusing the handshake: the page says why, retries
        # later, and the browser logs no failed connection.
        await socket.prepare(request)
        await socket.close(code=WSCloseCode.TRY_AGAIN_LATER, message=busy.encode()[:120])
        return socket
    try:
        await socket.prepare(request)
        reader = asyncio.create_task(_until_closed(socket), name=f"live-{camera}-reader")
        try:
            await _send(request, socket, session, viewer, reader)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    finally:
        stream.unsubscribe(viewer)
    return socket


async def _until_closed(socket: web.WebSocketResponse) -> None:
    # The page sends nothing; reading is what notices its close.
    async for _message in socket:
        pass


async def _send(request, socket, session, viewer, reader: asyncio.Task) -> None:
    sessions = request.app[SESSIONS]
    loop = asyncio.get_running_loop()
    checked = loop.time()
    while not reader.done():
        if loop.time() - checked >= SESSION_CHECK_S:
            # Signed out, idle, removed or unshared: the picture stops with the session.
            if sessions.get(session.token) is not session:
                await socket.close(code=WSCloseCode.POLICY_VIOLATION, message=b"signed out")
                return
            checked = loop.time()
        getter = asyncio.ensure_future(viewer.next())
        done, _ = await asyncio.wait({getter, reader}, timeout=SESSION_CHECK_S,
                                     return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            continue
        item = getter.result()
        if item is ENDED:
            await socket.close(code=WSCloseCode.SERVICE_RESTART, message=b"camera stream restarted")
            return
        try:
            if isinstance(item, str):
                await socket.send_str(item)
            else:
                await socket.send_bytes(item)
        except ConnectionResetError:
            return


def setup(app: web.Application) -> None:
    """Add the live view's socket."""
    app.router.add_get("/cameras/{camera}/live", live_socket)
