"""Live view: each camera's packets, remuxed once into fragmented MP4 and fanned out to viewers.

The recorder hands every packet it demuxes to its camera's LiveStream (in the camera's thread)
before cutting segments, so live view costs no second connection to the camera and no decode.
While nobody watches, the stream only keeps the packets since the last keyframe (a new viewer
starts at once from there). While someone watches, one muxer per camera turns packets into fMP4
fragments and every viewer gets the same bytes: a viewer costs a socket write, not a remux.
A viewer that falls behind skips to the next keyframe instead of holding the camera up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from fractions import Fraction

import av

from hub.errors import MediaError, PorchlightError
from hub.vault.fragments import Fragment, LiveMuxer, codec_mime

log = logging.getLogger(__name__)

MAX_VIEWERS = 16  # per camera
VIEWER_BACKLOG = 90  # fragments (six seconds at 15 fps) before a slow viewer skips ahead
MAX_GOP_PACKETS = 600  # a longer group of pictures is not kept for new viewers
# What a viewer's queue yields when the stream ended or restarted: the page reconnects.
ENDED = None


class LiveBusy(PorchlightError):
    """The camera already has as many live viewers as it serves."""


@dataclass(frozen=True)
class _Packet:
    data: bytes
    pts: int | None
    dts: int
    keyframe: bool
    time_base: Fraction


class Viewer:
    """One browser watching a camera: the fragments for it, queued on its event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self.skipping = False
        self.skipped = 0

    def offer(self, item: str | bytes | Fragment | None) -> None:
        """Queue an item (call on the viewer's loop); a full queue skips to the next keyframe."""
        if isinstance(item, Fragment):
            if self.skipping and not item.keyframe:
                self.skipped += 1
                return
            if self.queue.qsize() >= VIEWER_BACKLOG:
                self.skipping = True
                self.skipped += 1
                return
            self.skipping = False
        self.queue.put_nowait(item)

    def send(self, item: str | bytes | Fragment | None) -> None:
        """Queue an item from any thread."""
        self.loop.call_soon_threadsafe(self.offer, item)

    async def next(self) -> str | bytes | None:
        """Return what to send next: the media type, the init segment, fragments; or ENDED."""
        item = await self.queue.get()
        return item.data if isinstance(item, Fragment) else item


class LiveStream:
    """One camera's live fMP4: fed by its recorder's thread, read by its viewers' sockets."""

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self._lock = threading.Lock()
        self._gop: list[_Packet] = []
        self._viewers: set[Viewer] = set()
        self._muxer: LiveMuxer | None = None
        self._recent: list[Fragment] = []  # fragments since the last keyframe, for new viewers
        self.mime: str | None = None
        self.fragments = 0

    @property
    def viewers(self) -> int:
        """Return how many viewers watch now."""
        return len(self._viewers)

    def feed(self, packet: av.Packet, stream: av.stream.Stream) -> None:
        """Take a packet from the recorder (before it is muxed into a segment); never raise."""
        if packet.dts is None or packet.size == 0 or packet.time_base is None:
            return
        item = _Packet(bytes(packet), packet.pts, packet.dts, packet.is_keyframe, packet.time_base)
        with self._lock:
            if item.keyframe:
                self._gop = [item]
            elif self._gop and len(self._gop) < MAX_GOP_PACKETS:
                self._gop.append(item)
            else:
                self._gop = []
            if not self._viewers:
                return
            try:
                self._mux(item, stream)
            except (MediaError, av.error.FFmpegError, ValueError) as err:
                # Live view must never stop recording: drop the muxer, tell the viewers.
                log.warning("camera %s: live view restarted (%s)", self.camera, err)
                self._end_locked()

    def _mux(self, item: _Packet, stream: av.stream.Stream) -> None:
        fragments: list[Fragment] = []
        if self._muxer is None:
            if not self._gop or not self._gop[0].keyframe:
                return  # wait for a keyframe
            self._muxer = LiveMuxer(stream)
            self._recent = []
            backlog = self._gop
        else:
            backlog = [item]
        for packet in backlog:
            fragments += self._muxer.mux(packet.data, packet.pts, packet.dts, packet.keyframe,
                                         packet.time_base)
        if self.mime is None and self._muxer.init:
            self.mime = codec_mime(self._muxer.init) or ""
            for viewer in self._viewers:
                self._greet(viewer)
        for fragment in fragments:
            if fragment.keyframe:
                self._recent = []
            self._recent.append(fragment)
            self.fragments += 1
            for viewer in self._viewers:
                viewer.send(fragment)

    def _greet(self, viewer: Viewer) -> None:
        viewer.send(self.mime)
        viewer.send(self._muxer.init)

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> Viewer:
        """Add a viewer; it first gets the init segment and the fragments since the last keyframe."""
        with self._lock:
            if len(self._viewers) >= MAX_VIEWERS:
                raise LiveBusy(f"camera {self.camera} already has {MAX_VIEWERS} live viewers")
            viewer = Viewer(loop)
            if self._muxer is not None and self.mime is not None:
                viewer.offer(self.mime)
                viewer.offer(self._muxer.init)
                for fragment in self._recent:
                    viewer.offer(fragment)
            self._viewers.add(viewer)
            return viewer

    def unsubscribe(self, viewer: Viewer) -> None:
        """Remove a viewer; the last one to leave stops the muxer."""
        with self._lock:
            self._viewers.discard(viewer)
            if not self._viewers:
                self._close_muxer()

    def end(self) -> None:
        """End every viewer's stream (the camera's stream ended, restarted or was removed)."""
        with self._lock:
            self._gop = []
            self._end_locked()

    def _end_locked(self) -> None:
        self._close_muxer()
        for viewer in self._viewers:
            viewer.send(ENDED)
        self._viewers.clear()

    def _close_muxer(self) -> None:
        if self._muxer is not None:
            self._muxer.close()
        self._muxer = None
        self._recent = []
        self.mime = None


class LiveStreams:
    """The live streams of the running cameras, by name."""

    def __init__(self) -> None:
        self._streams: dict[str, LiveStream] = {}
        self._lock = threading.Lock()

    def open(self, camera: str) -> LiveStream:
        """Return a new live stream for a camera that starts."""
        with self._lock:
            stream = self._streams[camera] = LiveStream(camera)
            return stream

    def close(self, camera: str) -> None:
        """End a camera's live stream (it stopped or was removed)."""
        with self._lock:
            stream = self._streams.pop(camera, None)
        if stream is not None:
            stream.end()

    def get(self, camera: str) -> LiveStream | None:
        """Return a running camera's live stream, or None."""
        return self._streams.get(camera)
