"""End an MP4's presentation at an exact time by shortening its edit lists in place.

FFmpeg's MP4 muxer writes each track's edit list from the packets it was given: it starts
presentation at time zero (frames before zero are pre-roll), but it ends presentation after
the last frame it holds. A stream with B-frames must keep, after the last frame of a range,
the later reference frame those B-frames are predicted from; that frame would then be shown.
Shortening the edit list (ISO/IEC 14496-12 `elst`, with `mvhd` and `tkhd` durations) hides it
the way every player already honours, without touching a byte of video.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from typing import BinaryIO

from hub.errors import MediaError

_HEADER = struct.Struct(">I4s")
_CONTAINERS = {b"moov", b"trak", b"edts"}
MAX_MOOV_BYTES = 64 * 1024 * 1024


def end_presentation_at(handle: BinaryIO, end: Fraction) -> None:
    """Shorten every track's edit list of the MP4 in `handle` so that nothing shows after `end`."""
    offset, size = _find_moov(handle)
    if size > MAX_MOOV_BYTES:
        raise MediaError(f"the MP4 index is {size} bytes; the limit is {MAX_MOOV_BYTES}")
    handle.seek(offset)
    moov = bytearray(handle.read(size))
    boxes = list(_walk(moov, 8, len(moov)))
    mvhd = next((start for kind, start, _ in boxes if kind == b"mvhd"), None)
    if mvhd is None:
        raise MediaError("the MP4 has no movie header")
    version = moov[mvhd]
    timescale = struct.unpack_from(">I", moov, mvhd + (20 if version else 12))[0]
    limit = int(end * timescale)
    longest = 0
    for kind, start, stop in boxes:
        if kind == b"trak":
            inner = list(_walk(moov, start, stop))
            total = _trim_elst(moov, inner, limit)
            if total is not None:
                _set_duration(moov, next(s for k, s, _ in inner if k == b"tkhd"), "tkhd", total)
                longest = max(longest, total)
    if longest:
        _set_duration(moov, mvhd, "mvhd", longest)
    handle.seek(offset)
    handle.write(moov)


def _find_moov(handle: BinaryIO) -> tuple[int, int]:
    handle.seek(0)
    position = 0
    while header := handle.read(8):
        if len(header) < 8:
            break
        size, kind = _HEADER.unpack(header)
        if size == 1:
            size = struct.unpack(">Q", handle.read(8))[0]
        elif size == 0:
            handle.seek(0, 2)
            size = handle.tell() - position
        if size < 8:
            break
        if kind == b"moov":
            return position, size
        position += size
        handle.seek(position)
    raise MediaError("the MP4 has no index (moov)")


def _walk(data: bytearray, start: int, stop: int):
    """Yield (kind, payload start, box end) for the boxes inside [start, stop), depth first."""
    position = start
    while position + 8 <= stop:
        size, kind = _HEADER.unpack_from(data, position)
        if size < 8 or position + size > stop:
            raise MediaError("the MP4 index is malformed")
        yield kind, position + 8, position + size
        if kind in _CONTAINERS:
            yield from _walk(data, position + 8, position + size)
        position += size


def _trim_elst(data: bytearray, inner: list, limit: int) -> int | None:
    """Cut the edit list at `limit` (movie timescale); return the track's new duration."""
    elst = next((start for kind, start, _ in inner if kind == b"elst"), None)
    if elst is None:
        return None
    version = data[elst]
    (count,) = struct.unpack_from(">I", data, elst + 4)
    entry = struct.Struct(">QqI" if version else ">IiI")
    total = 0
    for index in range(count):
        at = elst + 8 + index * entry.size
        duration, media_time, rate = entry.unpack_from(data, at)
        duration = max(0, min(duration, limit - total))
        entry.pack_into(data, at, duration, media_time, rate)
        total += duration
    return total


def _set_duration(data: bytearray, box: int, kind: str, duration: int) -> None:
    version = data[box]
    # Offsets of `duration` after version and flags: mvhd (times, timescale), tkhd (times, id,
    # reserved).
    if kind == "mvhd":
        at, form = (box + 24, ">Q") if version else (box + 16, ">I")
    else:
        at, form = (box + 28, ">Q") if version else (box + 20, ">I")
    current = struct.unpack_from(form, data, at)[0]
    struct.pack_into(form, data, at, min(current, duration))
