"""Media by stream copy: split a file into keyframe-aligned segments, join segments into one MP4.

Nothing here decodes or re-encodes video, and nothing here writes plaintext to disk: segments
are muxed into memory so that only the vault's ciphertext ever reaches the data dir.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av

from hub.errors import MediaError
from hub.vault.editlist import end_presentation_at

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


def split_media(path: Path | bytes, segment_seconds: float = 10.0,
                notes: list[str] | None = None, name: str | None = None) -> Iterator[Piece]:
    """Yield ~segment_seconds pieces of a media file, cut at video keyframes by stream copy.

    `path` is a file, or a whole file's bytes held in memory (a web upload, which must never
    be written to disk as plaintext) named `name` in messages. A still picture is yielded
    whole. Raise MediaError if the file is not camera media. A file cut short (a camera or a
    copy that stopped mid-write) yields what it holds whole: the frame the cut went through is
    dropped, and `notes` says so.
    """
    what = name if name is not None else str(path)
    source: Path | BinaryIO = path if isinstance(path, Path) else io.BytesIO(path)
    if not isinstance(path, Path):
        # FFmpeg also guesses the format by the file's name: the same name, the same guess
        # (and the same answer) as the CLI reading the file itself.
        source.name = what  # type: ignore[union-attr]
    container = _open(source, what)
    with container:
        if container.format.name in TEXT_FORMATS:
            raise MediaError(f"{what}: not a media file (it is text)")
        image_type = _image_type(container)
        if image_type is not None:
            yield Piece(0.0, 0.0, path if isinstance(path, bytes) else path.read_bytes(),
                        image_type)
            return
        video = next((s for s in container.streams.video if _codec(s) in VIDEO_CODECS), None)
        if video is None:
            names = ", ".join(_codec(s) for s in container.streams) or "no streams"
            raise MediaError(f"{what}: not camera media (no H.264/H.265/VP9/AV1 video: {names})")
        audio = [s for s in container.streams.audio if _codec(s) in AUDIO_CODECS]
        yield from _cut(container, video, audio, segment_seconds, what,
                        notes if notes is not None else [])


def _image_type(container: av.container.InputContainer) -> str | None:
    name = container.format.name
    if name in IMAGE_FORMATS:
        stream = container.streams.video[0] if container.streams.video else None
        codec = _codec(stream) if stream is not None else ""
        return IMAGE_FORMATS[name] or IMAGE_CODECS.get(codec)
    return None


def _codec(stream: av.stream.Stream) -> str:
    # A file cut in its header can hold a stream FFmpeg found no codec for (seen: an MP4 cut
    # within its first kilobyte, found by the truncation property test).
    context = stream.codec_context
    return context.name if context is not None else "unknown"


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
            at = float((packet.pts if packet.pts is not None else packet.dts) * stream.time_base)
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
    notes: list[str],
) -> Iterator[Piece]:
    cutter = SegmentCutter(video, audio, segment_seconds)
    origin: float | None = None
    dropped = 0
    last_video: float | None = None

    def piece(closed: ClosedSegment) -> Piece:
        return Piece(closed.start - origin, closed.end - origin, closed.data, SEGMENT_TYPE)

    try:
        for packet in container.demux(cutter.streams):
            # The demuxer flags a packet that the file holds only in part: the file was cut
            # through it. Kept, it would be a frame that never decodes.
            if packet.is_corrupt:
                dropped += 1
                continue
            if packet.stream is video and packet.pts is not None and origin is not None:
                at = float(packet.pts * video.time_base) - origin
                last_video = at if last_video is None else max(last_video, at)
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
    declared = float(video.duration * video.time_base) if video.duration else None
    # The index (at the front of the file) lists more than the file holds.
    short = declared is not None and last_video is not None and \
        declared - last_video > 2 * _frame_seconds(video)
    if dropped or short:
        held = f"{last_video + _frame_seconds(video):.1f} s" if last_video is not None else "nothing"
        listed = f" of the {declared:.1f} s its index lists" if declared else ""
        cut = f", and dropped {dropped} frame{'s' if dropped != 1 else ''} the cut went through" \
            if dropped else ""
        notes.append(f"{what} is cut short: imported the {held} it holds{listed}{cut}")


def _frame_seconds(video: av.stream.Stream) -> float:
    rate = video.average_rate or video.guessed_rate
    return float(1 / rate) if rate else 0.0


def decode_problem(data: bytes) -> str | None:
    """Decode every frame of a segment; return why it stops before its end, or None."""
    frames, at = 0, 0.0
    try:
        with av.open(io.BytesIO(data)) as container:
            streams = container.streams.video or container.streams
            for packet in container.demux(streams[0]):
                if packet.pts is not None:
                    at = float(packet.pts * packet.time_base)
                for _frame in packet.decode():
                    frames += 1
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        return f"does not decode to the end: {reason} at {at:.3f} s, after {frames} frames"
    if not frames:
        return "holds no picture that decodes"
    return None


def probe_duration(data: bytes) -> float:
    """Return the duration in seconds of an MP4 held in memory."""
    with av.open(io.BytesIO(data)) as container:
        if container.duration is not None:
            return container.duration / av.time_base
        return 0.0




@dataclass
class JoinReport:
    """What `join_segments` wrote and what it had to leave out.

    `span` is the (start, end) it wrote, in seconds from the asked start; `overlaps` says, per
    segment, how much of it was skipped because earlier footage already covered it.
    """

    written: list[str]
    skipped: dict[str, str]
    overlaps: dict[str, str] = field(default_factory=dict)
    span: tuple[Fraction, Fraction] | None = None


def seconds(value: float | Fraction | timedelta) -> Fraction:
    """Return an exact number of seconds (a timedelta is exact to the microsecond)."""
    if isinstance(value, timedelta):
        return Fraction(value // timedelta(microseconds=1), 10**6)
    return Fraction(value).limit_denominator(10**6) if isinstance(value, float) else Fraction(value)


@dataclass
class _Placed:
    """One segment's packets and where its time zero lands on the export's timeline."""

    packets: list[av.Packet]
    offset: Fraction
    video: int
    declared_end: Fraction | None = None  # where the index says the segment ends

    def time(self, packet: av.Packet) -> Fraction:
        ts = packet.pts if packet.pts is not None else packet.dts
        return self.offset + ts * packet.stream.time_base

    def video_indexes(self) -> list[int]:
        return [i for i, p in enumerate(self.packets) if p.stream.index == self.video]


class _Joiner:
    """The export's timeline: what has been written, where, and where it must stop."""

    def __init__(self, output: av.container.OutputContainer, targets: dict[int, av.stream.Stream],
                 video: int, end: Fraction | None, report: JoinReport) -> None:
        self.output = output
        self.targets = targets
        self.video = video
        self.end = end
        self.report = report
        self.origin: Fraction | None = None  # timeline time that becomes 0 in the file
        self.written_until: Fraction | None = None  # end of the last video frame written
        self.declared_until: Fraction | None = None  # end of the last segment, by the index
        self.last_dts: dict[int, int] = {}

    def add(self, segment_id: str, placed: _Placed) -> bool:
        """Write the part of one segment that the window asks for and nothing has covered yet."""
        video = placed.video_indexes()
        keyframes = [i for i in video if placed.packets[i].is_keyframe]
        if not keyframes:
            self.report.overlaps[segment_id] = f"skipped segment {segment_id}: no keyframe"
            return False
        first = placed.time(placed.packets[keyframes[0]])
        if self.written_until is None:
            # The first footage: from the keyframe at or before the asked start, so that the
            # edit list can start playback exactly there.
            if not any(placed.time(placed.packets[i]) >= 0 for i in video):
                return False  # only footage before the window (it ends where the window starts)
            before = [k for k in keyframes if placed.time(placed.packets[k]) <= 0]
            chosen = before[-1] if before else keyframes[0]
            self.origin = max(Fraction(0), placed.time(placed.packets[chosen]))
        else:
            # A recorder's next segment starts where its last one ended by the wall clock,
            # but its frames may run a little longer than the wall clock did: it continues
            # the timeline, whole. A segment that starts before the last one ended is the
            # same moments recorded twice, and only what comes after is new.
            again = self.declared_until is not None and placed.offset < self.declared_until
            if first < self.written_until and not again:
                placed.offset += self.written_until - first
            later = [k for k in keyframes
                     if placed.time(placed.packets[k]) >= self.written_until]
            if not later:
                self.report.overlaps[segment_id] = (
                    f"skipped segment {segment_id}: footage already written covers all of it")
                return False
            chosen = later[0]
            skipped = placed.time(placed.packets[chosen]) - placed.time(placed.packets[keyframes[0]])
            if skipped > 0:
                self.report.overlaps[segment_id] = (
                    f"skipped {float(skipped):.1f} s of segment {segment_id}: footage already "
                    "written covers it")
        last = len(placed.packets) - 1
        if self.end is not None:
            inside = [i for i in video if i >= chosen and placed.time(placed.packets[i]) < self.end]
            if not inside:
                return False
            last = inside[-1]
        self._write(placed, chosen, last)
        if placed.declared_end is not None:
            self.declared_until = max(self.declared_until or placed.declared_end,
                                      placed.declared_end)
        return True

    def _write(self, placed: _Placed, chosen: int, last: int) -> None:
        packets = placed.packets
        keyframe = packets[chosen]
        video_shift = self._shift(placed, keyframe)
        # The first kept keyframe must decode after everything written before it: slide the
        # segment by the few ticks that rounding or B-frame reordering can cost.
        first_dts = keyframe.dts + video_shift
        if self.video in self.last_dts and first_dts <= self.last_dts[self.video]:
            placed.offset += (self.last_dts[self.video] + 1 - first_dts) * keyframe.stream.time_base
        audio_from = self.origin if self.written_until is None else self.written_until
        for index in range(chosen, len(packets)):
            packet = packets[index]
            stream_index = packet.stream.index
            is_video = stream_index == self.video
            at = placed.time(packet)
            if is_video and index > last:
                continue
            if not is_video and (at < audio_from or (self.end is not None and at >= self.end)):
                continue
            shift = self._shift(placed, packet)
            dts = packet.dts + shift
            if stream_index in self.last_dts and dts <= self.last_dts[stream_index]:
                continue  # an audio packet that would go back in time
            self.last_dts[stream_index] = dts
            if is_video:
                until = at + (packet.duration or 0) * packet.stream.time_base
                if self.written_until is None or until > self.written_until:
                    self.written_until = until
            packet.dts = dts
            if packet.pts is not None:
                packet.pts += shift
            packet.stream = self.targets[stream_index]
            self.output.mux(packet)

    def _shift(self, placed: _Placed, packet: av.Packet) -> int:
        return round((placed.offset - self.origin) / packet.stream.time_base)

    def runs_past_end(self) -> bool:
        """Return True if frames after the asked end had to be written (as references)."""
        return None not in (self.end, self.written_until) and self.written_until > self.end

    def span(self) -> tuple[Fraction, Fraction] | None:
        if self.written_until is None:
            return None
        end = self.written_until if self.end is None else min(self.end, self.written_until)
        return self.origin, end


def join_segments(
    items: Iterable[tuple[str, float | Fraction, Callable[[], bytes]]
                    | tuple[str, float | Fraction, Callable[[], bytes], float | Fraction]],
    out: Path | io.BytesIO,
    *,
    end: float | Fraction | None = None,
    on_error: Callable[[str, Exception], None] | None = None,
) -> JoinReport:
    """Remux MP4 segments into one MP4 by stream copy, exactly over [0, end) of a timeline.

    `items` yields (segment id, where the segment's time zero falls in seconds from the asked
    start, a loader of its plaintext[, where the index says it ends]), in time order. A
    segment that starts before the previous one ended by the index is the same moments
    recorded twice; one that starts at or after it continues the timeline even if the
    previous one's frames ran longer. The copy begins at the keyframe at or
    before 0; the frames before 0 get negative timestamps, which the MP4 muxer turns into an
    edit list, so players start at 0. Footage that an earlier segment already covered is
    skipped and reported, so timestamps only ever rise. A loader that raises is reported and
    skipped so the rest still export.
    """
    report = JoinReport([], {})
    end = None if end is None else seconds(end)
    output: av.container.OutputContainer | None = None
    joiner: _Joiner | None = None
    try:
        for segment_id, offset, load, *declared in items:
            try:
                data = load()
                source = av.open(io.BytesIO(data), mode="r")
            except Exception as err:  # noqa: BLE001 - the caller decides what a bad segment means
                report.skipped[segment_id] = str(err)
                if on_error is not None:
                    on_error(segment_id, err)
                continue
            with source:
                video = next((s.index for s in source.streams.video), None)
                if video is None:
                    report.skipped[segment_id] = f"segment {segment_id} holds no video"
                    continue
                if output is None:
                    target = out if isinstance(out, io.BytesIO) else str(out)
                    output = av.open(target, mode="w", format="mp4")
                    targets = {s.index: output.add_stream_from_template(s)
                               for s in source.streams if s.type in ("video", "audio")}
                    joiner = _Joiner(output, targets, video, end, report)
                packets = [p for p in source.demux()
                           if p.dts is not None and p.size and p.stream.index in joiner.targets]
                placed = _Placed(packets, seconds(offset), video,
                                 seconds(declared[0]) if declared else None)
                if joiner.add(segment_id, placed):
                    report.written.append(segment_id)
    finally:
        if output is not None:
            output.close()
    report.span = joiner.span() if joiner is not None else None
    if joiner is not None and joiner.runs_past_end():
        # B-frames before the end are predicted from a frame after it, which had to be kept.
        end_at = joiner.end - joiner.origin
        if isinstance(out, io.BytesIO):
            end_presentation_at(out, end_at)
        else:
            with open(out, "r+b") as handle:
                end_presentation_at(handle, end_at)
    return report
