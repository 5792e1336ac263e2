"""Media by stream copy: split a file into keyframe-aligned segments, join segments into one MP4.

Nothing here decodes or re-encodes video, and nothing here writes plaintext to disk: segments
are muxed into memory so that only the vault's ciphertext ever reaches the data dir.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av

from hub.errors import MediaError

log = logging.getLogger(__name__)

VIDEO_CODECS = {"h264", "hevc", "mpeg4", "vp8", "vp9", "av1"}
AUDIO_CODECS = {"aac", "opus", "mp3", "pcm_alaw", "pcm_mulaw", "pcm_s16le", "pcm_s16be"}
# Formats that hold a single still picture: stored whole, never remuxed.
IMAGE_FORMATS = {"image2": None, "jpeg_pipe": "image/jpeg", "png_pipe": "image/png"}
IMAGE_CODECS = {"mjpeg": "image/jpeg", "png": "image/png"}
SEGMENT_TYPE = "video/mp4"
# FFmpeg "plays" text files (ANSI art) through these demuxers; to a camera hub they are not media.
TEXT_FORMATS = {"tty"}


@dataclass(frozen=True)
class Piece:
    """A piece of media held in memory: its offsets from the start of the source, in seconds."""

    offset_start: float
    offset_end: float
    data: bytes
    media_type: str


def _open(source: str | Path | BinaryIO, what: str) -> av.container.InputContainer:
    try:
        return av.open(source if not isinstance(source, Path) else str(source), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as err:
        raise MediaError(f"{what}: not a media file (FFmpeg cannot read it: {err.__class__.__name__})") from None


def split_media(path: Path, segment_seconds: float = 10.0) -> Iterator[Piece]:
    """Yield ~segment_seconds pieces of a media file, cut at video keyframes by stream copy.

    A still picture is yielded whole. Raise MediaError if the file is not camera media.
    """
    container = _open(path, str(path))
    with container:
        if container.format.name in TEXT_FORMATS:
            raise MediaError(f"{path}: not a media file (it is text)")
        image_type = _image_type(container)
        if image_type is not None:
            yield Piece(0.0, 0.0, path.read_bytes(), image_type)
            return
        video = next((s for s in container.streams.video if s.codec_context.name in VIDEO_CODECS), None)
        if video is None:
            names = ", ".join(s.codec_context.name for s in container.streams) or "no streams"
            raise MediaError(f"{path}: not camera media (no H.264/H.265/VP9/AV1 video: {names})")
        audio = [s for s in container.streams.audio if s.codec_context.name in AUDIO_CODECS]
        yield from _cut(container, video, audio, segment_seconds, str(path))


def _image_type(container: av.container.InputContainer) -> str | None:
    name = container.format.name
    if name in IMAGE_FORMATS:
        stream = container.streams.video[0] if container.streams.video else None
        codec = stream.codec_context.name if stream is not None else ""
        return IMAGE_FORMATS[name] or IMAGE_CODECS.get(codec)
    return None


class _SegmentWriter:
    """One output MP4 in memory whose timestamps start at zero."""

    def __init__(self, templates: list[av.stream.Stream], start: float) -> None:
        self.buffer = io.BytesIO()
        self.output = av.open(self.buffer, mode="w", format="mp4")
        self.streams = {s.index: self.output.add_stream_from_template(s) for s in templates}
        self.start = start
        self.end = start
        self.packets = 0

    def mux(self, packet: av.Packet, source: av.stream.Stream) -> None:
        shift = int(round(self.start / source.time_base))
        target = self.streams[source.index]
        packet.dts -= shift
        if packet.pts is not None:
            packet.pts -= shift
        packet.stream = target
        self.output.mux(packet)
        self.packets += 1

    def close(self) -> bytes:
        self.output.close()
        return self.buffer.getvalue()


@dataclass(frozen=True)
class ClosedSegment:
    """A segment the cutter closed: MP4 bytes and its start and end in stream seconds."""

    start: float
    end: float
    data: bytes


class SegmentCutter:
    """Cut a packet stream into ~segment_seconds MP4s at video keyframes, by stream copy.

    Shared by `footage import` (times from the file) and the live recorder (times from the
    wall clock at each keyframe), so both cut the same way.
    """

    def __init__(self, video: av.stream.Stream, audio: list[av.stream.Stream],
                 segment_seconds: float) -> None:
        self.video = video
        self.streams = [video, *audio]
        self.segment_seconds = segment_seconds
        self.writer: _SegmentWriter | None = None
        self.started = False

    def feed(self, packet: av.Packet) -> ClosedSegment | None:
        """Mux one packet; return the segment this packet's keyframe closed, if any."""
        # Packets without dts (the demuxer's flush packets) and those before the first
        # keyframe cannot be stream-copied into a playable file.
        if packet.dts is None or packet.size == 0:
            return None
        stream = packet.stream
        closed = None
        if stream is self.video and packet.is_keyframe:
            at = float(packet.dts * stream.time_base)
            self.started = True
            if self.writer is None or at - self.writer.start >= self.segment_seconds:
                if self.writer is not None:
                    closed = self._close(at)
                self.writer = _SegmentWriter(self.streams, at)
        if self.writer is None:
            return closed
        end = float(((packet.pts or packet.dts) + (packet.duration or 0)) * stream.time_base)
        self.writer.end = max(self.writer.end, end)
        self.writer.mux(packet, stream)
        return closed

    @property
    def open_start(self) -> float | None:
        """Return the stream time where the open segment began, or None."""
        return self.writer.start if self.writer is not None else None

    def flush(self) -> ClosedSegment | None:
        """Close the open segment (end of file, or the camera dropped out)."""
        if self.writer is None or not self.writer.packets:
            self.writer = None
            return None
        return self._close(self.writer.end)

    def _close(self, end: float) -> ClosedSegment:
        writer, self.writer = self.writer, None
        return ClosedSegment(writer.start, max(end, writer.start), writer.close())


def _cut(
    container: av.container.InputContainer,
    video: av.stream.Stream,
    audio: list[av.stream.Stream],
    segment_seconds: float,
    what: str,
) -> Iterator[Piece]:
    cutter = SegmentCutter(video, audio, segment_seconds)
    origin: float | None = None

    def piece(closed: ClosedSegment) -> Piece:
        return Piece(closed.start - origin, closed.end - origin, closed.data, SEGMENT_TYPE)

    try:
        for packet in container.demux(cutter.streams):
            closed = cutter.feed(packet)
            if origin is None and cutter.open_start is not None:
                origin = cutter.open_start
            if closed is not None:
                yield piece(closed)
        closed = cutter.flush()
        if closed is not None:
            yield piece(closed)
    except av.error.FFmpegError as err:
        raise MediaError(f"{what}: cannot remux: {err}") from err
    if origin is None:
        raise MediaError(f"{what}: no keyframe found; nothing to store")


def probe_duration(data: bytes) -> float:
    """Return the duration in seconds of an MP4 held in memory."""
    with av.open(io.BytesIO(data)) as container:
        if container.duration is not None:
            return container.duration / av.time_base
        return 0.0


@dataclass
class JoinReport:
    """What `join_segments` wrote and what it had to leave out."""

    written: list[str]
    skipped: dict[str, str]


def join_segments(
    items: Iterable[tuple[str, float, Callable[[], bytes]]],
    out: Path | io.BytesIO,
    *,
    on_error: Callable[[str, Exception], None] | None = None,
) -> JoinReport:
    """Remux MP4 segments into one MP4 by stream copy, placing each at its offset in seconds.

    `items` yields (segment id, offset from the first segment, a loader of its plaintext).
    A loader that raises is reported and skipped so the rest still export.
    """
    report = JoinReport([], {})
    output: av.container.OutputContainer | None = None
    targets: dict[int, av.stream.Stream] = {}
    last_dts: dict[int, int] = {}
    try:
        for segment_id, offset, load in items:
            try:
                data = load()
                source = av.open(io.BytesIO(data), mode="r")
            except Exception as err:  # noqa: BLE001 - the caller decides what a bad segment means
                report.skipped[segment_id] = str(err)
                if on_error is not None:
                    on_error(segment_id, err)
                continue
            with source:
                if output is None:
                    target = out if isinstance(out, io.BytesIO) else str(out)
                    output = av.open(target, mode="w", format="mp4")
                    for stream in source.streams:
                        if stream.type in ("video", "audio"):
                            targets[stream.index] = output.add_stream_from_template(stream)
                for packet in source.demux():
                    if packet.dts is None or packet.stream.index not in targets:
                        continue
                    index = packet.stream.index
                    target = targets[index]
                    shift = int(round(Fraction(offset).limit_denominator(10**6) / packet.stream.time_base))
                    dts = packet.dts + shift
                    # Overlapping or clock-skewed segments must still give rising timestamps.
                    if index in last_dts and dts <= last_dts[index]:
                        bump = last_dts[index] + 1 - dts
                        dts += bump
                        shift += bump
                    packet.dts = dts
                    if packet.pts is not None:
                        packet.pts += shift
                    last_dts[index] = dts
                    packet.stream = target
                    output.mux(packet)
            report.written.append(segment_id)
    finally:
        if output is not None:
            output.close()
    return report
