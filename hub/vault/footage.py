"""Footage operations behind `porchlight footage`: import, list, export, prune, check, hold."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import pyrage

from hub.config import Config, check_camera_name
from hub.errors import MediaError, PorchlightError, UsageError
from hub.progress import progress_bar
from hub.timeutil import check_window, iso_second
from hub.vault.media import SEGMENT_TYPE, JoinReport, join_segments, seconds, split_media
from hub.vault.store import Segment, Vault
from hub.words import plural

log = logging.getLogger(__name__)


class Hub(Protocol):
    """What footage work needs of an opened hub (hub.service.Hub): its config and its vault."""

    config: Config
    vault: Vault


@dataclass(frozen=True)
class Upload:
    """A media file held only in memory (a web upload): its name for messages, its bytes."""

    name: str
    data: bytes


def import_files(
    hub: Hub, camera: str, start: datetime, files: list[Path | Upload], progress: bool = True,
    notes: list[str] | None = None,
) -> list[Segment]:
    """Seal media files into the vault as segments; all or nothing.

    The first file starts at `start`; each next file starts where the previous one ended.
    What had to be left out of a file (a file cut short) is added to `notes`.
    """
    check_camera_name(camera)
    for path in files:
        if isinstance(path, Path) and not path.is_file():
            raise UsageError(f"{path}: no such file")
    length = hub.config.vault.segment_seconds
    found: list[str] = []
    # Read every file once before sealing anything: a bad file later in the list must not
    # leave the earlier ones half imported.
    plans = [(path, list(split_media(path.data, length, found, name=path.name)
                         if isinstance(path, Upload) else split_media(path, length, found)))
             for path in files]
    if notes is not None:
        notes.extend(found)
    sealed: list[Segment] = []
    total = sum(len(p.data) for _, pieces in plans for p in pieces)
    bar = progress_bar(total, "B", "import", progress)
    try:
        at = start
        for _path, pieces in plans:
            end = at
            for piece in pieces:
                begin = at + timedelta(seconds=piece.offset_start)
                end = at + timedelta(seconds=piece.offset_end)
                sealed.append(hub.vault.seal(camera, begin, end, piece.media_type, piece.data))
                bar.update(len(piece.data))
            at = end
    except BaseException:
        for segment in sealed:
            hub.vault.delete(segment)
        log.warning("import failed; removed the %s it had sealed", plural(len(sealed), "segment"))
        raise
    finally:
        bar.close()
    return sealed


def import_lines(camera: str, segments: list[Segment], notes: list[str]) -> list[str]:
    """Return what `footage import` says of an import: its notes, then what it sealed."""
    return [f"note: {note}" for note in notes] + [
        f"sealed {plural(len(segments), 'segment')} of {camera} into the vault"]


def check_out_path(out: Path) -> None:
    """Refuse an --out that exists or whose folder is missing or not writable."""
    if out.exists() or out.is_symlink():
        raise UsageError(f"{out} already exists; choose another --out")
    folder = out.parent
    if not folder.is_dir():
        raise UsageError(f"--out: the folder {folder} does not exist; create it or choose another")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--out: cannot write in the folder {folder}; choose another")


@dataclass
class ExportResult:
    """What an export wrote: the file, the span it covers, what it left out and why."""

    out: Path | None
    exported: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    overlaps: dict[str, str] = field(default_factory=dict)
    span: tuple[datetime, datetime] | None = None


def export_footage(
    hub: Hub,
    camera: str,
    start: datetime,
    end: datetime,
    out: Path,
    unlock: Callable[[], pyrage.x25519.Identity],
    progress: bool = True,
) -> ExportResult:
    """Decrypt the footage of [start, end) and remux exactly that into one MP4 by stream copy."""
    check_window(start, end)
    hub.vault.check_camera(camera, [c.name for c in hub.config.cameras])
    check_out_path(out)
    segments = [s for s in hub.vault.segments(camera, start, end) if s.media_type == SEGMENT_TYPE]
    if not segments:
        raise PorchlightError(
            f"no footage of {camera} between {iso_second(start)} and {iso_second(end)}"
        )
    identity = unlock()
    partial = out.with_name(out.name + ".partial")
    bar = progress_bar(len(segments), "segment", "export", progress)

    def loader(segment: Segment) -> Callable[[], bytes]:
        def load() -> bytes:
            try:
                return hub.vault.read(segment, identity)
            finally:
                bar.update(1)
        return load

    try:
        report = _join(segments, start, end, partial, loader)
    except Exception as err:
        partial.unlink(missing_ok=True)
        raise MediaError(f"export failed while remuxing: {err}") from err
    finally:
        bar.close()
    result = ExportResult(out=None, exported=report.written, failed=report.skipped,
                          overlaps=report.overlaps, span=_span(report, start))
    if report.written:
        os.replace(partial, out)
        result.out = out
    else:
        partial.unlink(missing_ok=True)
    return result


def _join(segments: list[Segment], start: datetime, end: datetime, out: Path | io.BytesIO,
          loader: Callable[[Segment], Callable[[], bytes]]) -> JoinReport:
    return join_segments(
        ((s.id, seconds(s.start - start), loader(s), seconds(s.end - start)) for s in segments),
        out, end=seconds(end - start))


def _span(report: JoinReport, start: datetime) -> tuple[datetime, datetime] | None:
    if report.span is None:
        return None
    return tuple(start + timedelta(microseconds=round(t * 10**6)) for t in report.span)


@dataclass(frozen=True)
class Clip:
    """A clip joined in memory and the span of recorded time it covers."""

    data: bytes
    start: datetime
    end: datetime


def build_clip(hub: Hub, segments: list[Segment], identity, start: datetime | None = None,
               end: datetime | None = None) -> Clip:
    """Decrypt segments and join exactly [start, end) of them into one MP4 in memory."""
    start = segments[0].start if start is None else start
    end = max(s.end for s in segments) if end is None else end
    buffer = io.BytesIO()
    report = _join(segments, start, end, buffer,
                   lambda s: lambda: hub.vault.read(s, identity))
    if report.skipped:
        raise PorchlightError(f"{plural(len(report.skipped), 'segment')} damaged: "
                              + "; ".join(report.skipped.values()))
    span = _span(report, start)
    if span is None:
        raise PorchlightError("no footage in that window")
    for note in report.overlaps.values():
        log.warning("clip: %s", note)
    return Clip(buffer.getvalue(), *span)


def clip_bytes(hub: Hub, segments: list[Segment], identity, start: datetime | None = None,
               end: datetime | None = None) -> bytes:
    """Decrypt segments and join exactly [start, end) of them into one MP4 in memory."""
    return build_clip(hub, segments, identity, start, end).data
