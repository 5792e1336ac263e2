"""Fragmented MP4 for the browser's Media Source Extensions, by stream copy.

Live view and playback both hand the browser fMP4: an init segment (ftyp + moov, no samples)
and then media fragments (moof + mdat). Nothing is decoded or re-encoded, and nothing touches
the disk: the muxer writes into memory and the boxes are handed on as bytes.
"""

from __future__ import annotations

import io
import struct
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av

from hub.errors import MediaError

# One fragment per packet keeps live latency at one frame; empty_moov gives the browser an
# init segment before the first frame; default_base_moof is what MSE expects of data offsets.
LIVE_FLAGS = "frag_every_frame+empty_moov+default_base_moof"
# Playback: a fragment per group of pictures, so the browser can seek to any keyframe.
PLAYBACK_FLAGS = "frag_keyframe+empty_moov+default_base_moof"
INIT_BOXES = (b"ftyp", b"moov")


@dataclass(frozen=True)
class Fragment:
    """One media fragment (moof + mdat), and whether it starts with a keyframe."""

    data: bytes
    keyframe: bool


class _BoxSink:
    """A write-only file for the muxer that hands back whole top-level MP4 boxes."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def take(self) -> list[tuple[bytes, bytes]]:
        """Return the whole boxes written so far as (type, bytes), keeping any partial one."""
        boxes = []
        while len(self.buffer) >= 8:
            size, kind = struct.unpack(">I4s", self.buffer[:8])
            if size < 8 or len(self.buffer) < size:
                break  # the muxer writes 32-bit sizes only (never 0 or 64-bit) for these boxes
            boxes.append((kind, bytes(self.buffer[:size])))
            del self.buffer[:size]
        return boxes


def codec_mime(init: bytes) -> str | None:
    """Return the MSE type of an fMP4 init segment, or None for a codec the page cannot name."""
    at = init.find(b"avcC")
    # avcC: version, then profile, profile compatibility and level (ISO/IEC 14496-15, RFC 6381).
    if at < 4 or len(init) < at + 8:
        return None
    profile, compatibility, level = init[at + 5], init[at + 6], init[at + 7]
    return f'video/mp4; codecs="avc1.{profile:02x}{compatibility:02x}{level:02x}"'


class LiveMuxer:
    """Remux one video stream's packets into fMP4, a fragment per packet, from a keyframe on."""

    def __init__(self, template: av.stream.Stream) -> None:
        self.sink = _BoxSink()
        self.output = av.open(self.sink, mode="w", format="mp4",
                              options={"movflags": LIVE_FLAGS, "flush_packets": "1"})
        self.stream = self.output.add_stream_from_template(template)
        self.init = b""
        self._init_parts: list[bytes] = []
        self._moof: bytes | None = None
        self._keys: deque[bool] = deque()
        self._origin: int | None = None
        self._last_dts: int | None = None

    def mux(self, data: bytes, pts: int | None, dts: int, keyframe: bool,
            time_base: Fraction) -> list[Fragment]:
        """Mux one packet; return the fragments it completed (the previous packet's)."""
        if self._origin is None:
            if not keyframe:
                return []
            self._origin = dts
        dts -= self._origin
        if self._last_dts is not None and dts <= self._last_dts:
            raise MediaError("live stream: timestamps went backwards")
        self._last_dts = dts
        packet = av.Packet(data)
        packet.dts = dts
        packet.pts = dts if pts is None else pts - self._origin
        packet.time_base = time_base
        packet.is_keyframe = keyframe
        packet.stream = self.stream
        self._keys.append(keyframe)
        try:
            self.output.mux(packet)
        except av.error.FFmpegError as err:
            raise MediaError(f"live stream: cannot remux: {err}") from err
        return self._collect()

    def _collect(self) -> list[Fragment]:
        fragments = []
        for kind, box in self.sink.take():
            if kind in INIT_BOXES and self._moof is None:
                self._init_parts.append(box)
                if kind == b"moov":
                    self.init = b"".join(self._init_parts)
            elif kind == b"moof":
                self._moof = box
            elif kind == b"mdat" and self._moof is not None:
                keyframe = self._keys.popleft() if self._keys else False
                fragments.append(Fragment(self._moof + box, keyframe))
                self._moof = None
        return fragments

    def close(self) -> None:
        """Close the muxer (what it writes at the end is not needed)."""
        try:
            self.output.close()
        except (av.error.FFmpegError, OSError, ValueError):
            pass


def fragment_segment(data: bytes) -> bytes:
    """Remux a stored MP4 segment (video only) into fMP4: init segment, then a fragment per GOP."""
    out = io.BytesIO()
    try:
        with av.open(io.BytesIO(data), mode="r") as source:
            video = next((s for s in source.streams if s.type == "video"), None)
            if video is None:
                raise MediaError("the segment holds no video")
            with av.open(out, mode="w", format="mp4",
                         options={"movflags": PLAYBACK_FLAGS}) as output:
                target = output.add_stream_from_template(video)
                for packet in source.demux(video):
                    if packet.dts is None:
                        continue
                    packet.stream = target
                    output.mux(packet)
    except av.error.FFmpegError as err:
        raise MediaError(f"cannot remux the segment: {err}") from err
    return out.getvalue()
