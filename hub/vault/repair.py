"""Crash safety: find what a crash or power cut left behind and repair it without deleting footage.

Leftover temp files (never indexed, so never footage anyone saw) are removed; index rows whose
file is missing or fails its hash are flagged; vault files without a row are re-indexed from
their names, or moved to quarantine/. Every repair is logged and recorded in the `repairs` table.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hub.timeutil import iso, utcnow
from hub.vault.store import AGE_HEADER, TMP_SUFFIX, Vault, parse_segment_name, sha256_file

log = logging.getLogger(__name__)


@dataclass
class Repair:
    """One thing the check found and what it did about it."""

    action: str
    path: str
    detail: str

    def as_json(self) -> dict:
        """Return the repair as a JSON object."""
        return {"action": self.action, "path": self.path, "detail": self.detail}


@dataclass
class CheckReport:
    """What one check of the vault found."""

    repairs: list[Repair] = field(default_factory=list)
    checked: int = 0

    @property
    def clean(self) -> bool:
        """Return True when nothing needed repair."""
        return not self.repairs


def check_vault(vault: Vault, *, verify_hashes: bool = True,
                progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Repair the vault after a crash; with verify_hashes, hash every indexed file too.

    progress(done, total) is called after each indexed segment; an exception it raises stops
    the check there (what was repaired so far stays repaired and recorded).
    """
    report = CheckReport()
    root = vault.data.root
    _remove_temp_files(vault, report)
    indexed = {}
    segments = vault.segments()
    for segment in segments:
        indexed[segment.path] = segment
        report.checked += 1
        if progress is not None:
            progress(report.checked - 1, len(segments))
        path = root / segment.path
        if not path.exists():
            _flag(vault, report, segment, "missing", "the file is missing")
            continue
        size = path.stat().st_size
        if size != segment.size:
            _flag(vault, report, segment, "corrupt", f"{size} bytes instead of {segment.size}")
        elif verify_hashes and sha256_file(path) != segment.sha256:
            _flag(vault, report, segment, "corrupt", "its SHA-256 does not match the index")
        elif segment.status != "ok":
            vault.mark(segment.id, "ok")
            _record(vault, report, Repair("cleared", segment.path, "the file is whole again"))
    if progress is not None:
        progress(len(segments), len(segments))
    if vault.data.vault.exists():
        for path in sorted(vault.data.vault.rglob("*")):
            if path.is_dir() or path.parent == vault.data.tmp:
                continue
            relative = path.relative_to(root).as_posix()
            if relative not in indexed:
                _adopt_or_quarantine(vault, report, path, relative)
    return report


def check_decoding(vault: Vault, identity, progress: bool = False,
                   tick: Callable[[int, int], None] | None = None,
                   unsealed: list[str] | None = None) -> list[Repair]:
    """Decrypt and decode every whole segment; return a finding for each that stops early.

    Findings only: a segment whose file is whole but whose picture is cut (imported before
    imports dropped cut frames) is still the owner's footage, so nothing is changed.
    tick(done, total) follows each segment; with `unsealed`, a segment not sealed to this
    identity (a person's key, from the web UI) is listed there instead of failing the check.
    """
    from hub.errors import NotSealedToYou, SegmentCorrupt
    from hub.progress import progress_bar
    from hub.vault.media import decode_problem

    findings = []
    segments = vault.segments(status="ok")
    bar = progress_bar(len(segments), "segment", "decode", progress)
    try:
        for done, segment in enumerate(segments, 1):
            try:
                problem = decode_problem(vault.read(segment, identity))
            except SegmentCorrupt as err:
                problem = err.why
            except NotSealedToYou:
                if unsealed is None:
                    raise
                unsealed.append(segment.id)
                problem = None
            bar.update(1)
            if tick is not None:
                tick(done, len(segments))
            if problem is not None:
                findings.append(Repair("undecodable", segment.path,
                                       f"segment {segment.id} {problem}"))
    finally:
        bar.close()
    return findings


def _remove_temp_files(vault: Vault, report: CheckReport) -> None:
    if not vault.data.tmp.exists():
        return
    for path in sorted(vault.data.tmp.iterdir()):
        if path.name.endswith(TMP_SUFFIX):
            if path.name.removesuffix(TMP_SUFFIX) in vault.in_flight:
                continue  # being written by the recorder right now, not left by a crash
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue  # its seal finished (renamed) between the listing and now
            _record(vault, report, Repair(
                "removed-temp", path.relative_to(vault.data.root).as_posix(),
                f"an unfinished write of {size} bytes (never indexed)",
            ))


def _flag(vault: Vault, report: CheckReport, segment, status: str, why: str) -> None:
    repair = Repair(f"flagged-{status}", segment.path, f"segment {segment.id}: {why}")
    if segment.status == status:
        report.repairs.append(repair)  # already flagged and recorded by an earlier check
        return
    vault.mark(segment.id, status)
    _record(vault, report, repair)


def _adopt_or_quarantine(vault: Vault, report: CheckReport, path: Path, relative: str) -> None:
    parsed = parse_segment_name(path.name)
    if parsed is not None and parsed[2] in vault.in_flight:
        return  # renamed into place, about to be indexed by its seal
    if vault.db.execute("select 1 from segments where path = ?", [relative]).fetchone():
        return  # indexed by a seal that finished after this check listed the index
    parts = Path(relative).parts  # vault/<camera>/<day>/<name>
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(AGE_HEADER))
    except FileNotFoundError:
        return  # deleted meanwhile (a seal that failed cleans up after itself)
    if parsed is not None and len(parts) == 4 and header == AGE_HEADER:
        start, end, segment_id, media_type = parsed
        exists = vault.db.execute("select 1 from segments where id = ?", [segment_id]).fetchone()
        if not exists:
            vault.db["segments"].insert({
                "id": segment_id, "camera": parts[1], "start": iso(start), "end": iso(end),
                "size": path.stat().st_size, "media_type": media_type,
                "sha256": sha256_file(path), "path": relative, "status": "ok",
                "created": iso(utcnow()),
            })
            _record(vault, report, Repair("reindexed", relative, f"segment {segment_id} of {parts[1]}"))
            return
    target = vault.data.quarantine / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, target)
    _record(vault, report, Repair(
        "quarantined", relative,
        f"not a vault segment this hub can index; moved to {target.relative_to(vault.data.root)}",
    ))


def _record(vault: Vault, report: CheckReport, repair: Repair) -> None:
    report.repairs.append(repair)
    log.warning("vault repair: %s %s (%s)", repair.action, repair.path, repair.detail)
    vault.db["repairs"].insert({
        "at": iso(utcnow()), "action": repair.action, "path": repair.path, "detail": repair.detail,
    })


def disk_usage(path: Path) -> tuple[int, int]:
    """Return (total, free) bytes of the filesystem holding path."""
    stat = os.statvfs(path)
    return stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize
