"""The footage vault: every segment an age v1 file sealed to the household, indexed in SQLite.

Sealing needs only public recipients; reading needs the household identity, which only the
owner's passphrase unlocks. Writes are atomic: temp file, fsync, rename, then the index row.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyrage
import sqlite_utils

from hub.datadir import DataDir, fsync_dir
from hub.errors import MediaError, NotSealedToYou, SegmentCorrupt, StorageFull, UsageError
from hub.timeutil import from_iso, iso, utcnow

log = logging.getLogger(__name__)

AGE_HEADER = b"age-encryption.org/v1\n"
EXTENSIONS = {"video/mp4": "mp4", "image/jpeg": "jpg", "image/png": "png"}
MEDIA_TYPES = {ext: media_type for media_type, ext in EXTENSIONS.items()}
TMP_SUFFIX = ".tmp"
_STAMP = "%Y%m%dT%H%M%S.%fZ"
# <start>_<end>_<id>.<ext>.age: the name alone is enough to re-index a file whose row was lost.
_NAME = re.compile(
    r"^(?P<start>\d{8}T\d{6}\.\d{6}Z)_(?P<end>\d{8}T\d{6}\.\d{6}Z)_(?P<id>[0-9a-f]{32})"
    r"\.(?P<ext>[a-z0-9]+)\.age$"
)


@dataclass(frozen=True)
class Segment:
    """One row of the vault index."""

    id: str
    camera: str
    start: datetime
    end: datetime
    size: int
    media_type: str
    sha256: str
    path: str
    status: str

    @classmethod
    def from_row(cls, row: dict) -> Segment:
        """Build a Segment from a database row."""
        return cls(
            id=row["id"], camera=row["camera"], start=from_iso(row["start"]),
            end=from_iso(row["end"]), size=row["size"], media_type=row["media_type"],
            sha256=row["sha256"], path=row["path"], status=row["status"],
        )

    def as_json(self) -> dict:
        """Return the fields `footage list --json` prints."""
        return {
            "id": self.id, "camera": self.camera, "start": iso(self.start), "end": iso(self.end),
            "size": self.size, "media_type": self.media_type, "sha256": self.sha256,
            "status": self.status,
        }


class _HashingFile:
    """A file writer that hashes what passes through it (age ciphertext is hashed once)."""

    def __init__(self, handle: io.BufferedWriter) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> int:
        self.digest.update(chunk)
        self.size += len(chunk)
        return self.handle.write(chunk)

    def flush(self) -> None:
        self.handle.flush()


def segment_name(start: datetime, end: datetime, segment_id: str, media_type: str) -> str:
    """Return the vault file name that encodes a segment's times, id and media type."""
    ext = EXTENSIONS.get(media_type, "bin")
    return f"{start.strftime(_STAMP)}_{end.strftime(_STAMP)}_{segment_id}.{ext}.age"


def parse_segment_name(name: str) -> tuple[datetime, datetime, str, str] | None:
    """Read (start, end, id, media type) back from a vault file name, or None."""
    match = _NAME.match(name)
    if not match:
        return None
    start = datetime.strptime(match["start"], _STAMP).replace(tzinfo=UTC)
    end = datetime.strptime(match["end"], _STAMP).replace(tzinfo=UTC)
    return start, end, match["id"], MEDIA_TYPES.get(match["ext"], "application/octet-stream")


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Vault:
    """Seal segments into the data dir and read them back with the household identity."""

    def __init__(
        self, data: DataDir, db: sqlite_utils.Database, recipients: list[pyrage.x25519.Recipient],
        camera_recipients: Callable[[str], list[pyrage.x25519.Recipient]] | None = None,
    ) -> None:
        self.data = data
        self.db = db
        self.recipients = recipients
        # The people a camera is shared with, asked at each seal (hub.people.People).
        self.camera_recipients = camera_recipients
        # Segments being sealed right now: a check running beside the recorder (the hub's own,
        # or one the owner starts in the web UI) must not take their temp or unindexed files
        # for a crash's leftovers.
        self.in_flight: set[str] = set()

    def recipients_for(self, camera: str) -> list[pyrage.x25519.Recipient]:
        """Return everyone a new segment of this camera is sealed to."""
        extra = self.camera_recipients(camera) if self.camera_recipients else []
        seen = {str(r) for r in self.recipients}
        return self.recipients + [r for r in extra if str(r) not in seen]

    def seal(
        self, camera: str, start: datetime, end: datetime, media_type: str, plaintext: bytes
    ) -> Segment:
        """Encrypt one segment to the recipients, store it atomically, and index it."""
        if not self.recipients:
            raise MediaError("no recipients to seal footage to")
        segment_id = uuid.uuid4().hex
        self.in_flight.add(segment_id)
        try:
            return self._seal(segment_id, camera, start, end, media_type, plaintext)
        finally:
            self.in_flight.discard(segment_id)

    def _seal(self, segment_id: str, camera: str, start: datetime, end: datetime,
              media_type: str, plaintext: bytes) -> Segment:
        relative = Path("vault") / camera / start.strftime("%Y-%m-%d") / segment_name(
            start, end, segment_id, media_type
        )
        final = self.data.root / relative
        self.data.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.data.tmp / f"{segment_id}{TMP_SUFFIX}"
        try:
            with open(tmp, "wb") as handle:
                sink = _HashingFile(handle)
                pyrage.encrypt_io(io.BytesIO(plaintext), sink, self.recipients_for(camera))
                handle.flush()
                os.fsync(handle.fileno())
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, final)
            fsync_dir(final.parent)
        except (OSError, pyrage.EncryptError) as err:
            tmp.unlink(missing_ok=True)
            # pyrage reports the writer's OSError inside its own EncryptError text.
            if getattr(err, "errno", None) == errno.ENOSPC or f"[Errno {errno.ENOSPC}]" in str(err):
                raise StorageFull(
                    f"the disk is full while sealing a segment of {camera}; nothing was indexed "
                    "(free space or lower the retention budget)"
                ) from err
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        row = {
            "id": segment_id, "camera": camera, "start": iso(start), "end": iso(end),
            "size": sink.size, "media_type": media_type, "sha256": sink.digest.hexdigest(),
            "path": relative.as_posix(), "status": "ok", "created": iso(utcnow()),
        }
        try:
            with self.db.write_lock:
                self.db["segments"].insert(row)
        except sqlite3.OperationalError as err:
            final.unlink(missing_ok=True)
            if "full" in str(err):
                raise StorageFull(
                    f"the disk is full while indexing a segment of {camera}; nothing was indexed "
                    "(free space or lower the retention budget)"
                ) from err
            raise
        log.info("sealed segment %s of %s (%d bytes)", segment_id, camera, sink.size)
        return Segment.from_row(row)

    def segments(
        self,
        camera: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        status: str | None = None,
    ) -> list[Segment]:
        """Return the segments that overlap [start, end], oldest first."""
        where, args = [], {}
        if camera is not None:
            where.append("camera = :camera")
            args["camera"] = camera
        if start is not None:
            where.append('"end" > :start')
            args["start"] = iso(start)
        if end is not None:
            where.append("start < :end")
            args["end"] = iso(end)
        if status is not None:
            where.append("status = :status")
            args["status"] = status
        rows = self.db["segments"].rows_where(
            " and ".join(where) or None, args, order_by="start, camera"
        )
        return [Segment.from_row(row) for row in rows]

    def cameras(self) -> list[str]:
        """Return the cameras that have footage in the vault."""
        return [r[0] for r in self.db.execute("select distinct camera from segments order by 1")]

    def check_camera(self, camera: str, configured: Iterable[str]) -> None:
        """Raise a clear error for a camera that is neither configured nor has footage."""
        known = sorted(set(configured) | set(self.cameras()))
        if camera not in known:
            listing = ", ".join(known) if known else "none yet"
            raise UsageError(f"unknown camera {camera!r} (cameras on this hub: {listing})")

    def read(self, segment: Segment, identity: pyrage.x25519.Identity) -> bytes:
        """Check a segment's hash and decrypt it; raise SegmentCorrupt naming it if it is damaged."""
        path = self.data.root / segment.path
        try:
            ciphertext = path.read_bytes()
        except FileNotFoundError:
            raise SegmentCorrupt(segment.id, segment.path, "the file is missing") from None
        if len(ciphertext) != segment.size:
            raise SegmentCorrupt(
                segment.id, segment.path,
                f"{len(ciphertext)} bytes instead of {segment.size} (truncated or altered)",
            )
        if hashlib.sha256(ciphertext).hexdigest() != segment.sha256:
            raise SegmentCorrupt(segment.id, segment.path, "its SHA-256 does not match the index")
        try:
            return pyrage.decrypt(ciphertext, [identity])
        except pyrage.DecryptError as err:
            if "no matching keys" in str(err).lower():
                raise NotSealedToYou(
                    f"segment {segment.id} was not sealed to this key (recorded before the camera "
                    "was shared with it, or never shared)") from None
            raise SegmentCorrupt(segment.id, segment.path, f"age cannot decrypt it: {err}") from None

    def mark(self, segment_id: str, status: str) -> None:
        """Flag a segment (ok, missing, corrupt) without deleting anything."""
        with self.db.write_lock:
            self.db["segments"].update(segment_id, {"status": status})

    def delete(self, segment: Segment) -> None:
        """Remove a segment's file and its row (retention only; holds are checked by the caller)."""
        (self.data.root / segment.path).unlink(missing_ok=True)
        with self.db.write_lock, self.db.conn:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("delete from holds where segment_id = ?", [segment.id])
            self.db.execute("delete from segments where id = ?", [segment.id])
        log.info("retention deleted segment %s of %s", segment.id, segment.camera)

    def held_ids(self) -> set[str]:
        """Return the ids of segments under any hold."""
        return {r[0] for r in self.db.execute("select distinct segment_id from holds")}

    def hold(self, segments: Iterable[Segment], kind: str, reference: str) -> int:
        """Put segments on hold so retention keeps them; return how many were added."""
        rows = [
            {"segment_id": s.id, "kind": kind, "reference": reference, "created": iso(utcnow())}
            for s in segments
        ]
        with self.db.write_lock:
            self.db["holds"].insert_all(rows)
        return len(rows)

    def release(self, kind: str, reference: str) -> int:
        """Lift the holds of one kind and reference; return how many were lifted."""
        with self.db.write_lock:
            cursor = self.db.execute(
                "delete from holds where kind = ? and reference = ?", [kind, reference]
            )
        return cursor.rowcount
