"""Alert attachments: photos the owner shares with the neighbourhood, faces blurred by default.

A shared photo is re-encoded before it leaves: faces are blurred (unless the owner opts out for
that post) and EXIF metadata, GPS tags included, is dropped either way. Attachments are
neighbourhood-public by the owner's choice, so they live beside the feed (not in the footage
vault) where the hub can serve them to LAN neighbours unattended.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from hub.datadir import DataDir
from hub.errors import MediaError, UsageError

MAX_PHOTO_BYTES = 8 * 1024 * 1024
MAX_CLIP_BYTES = 25 * 1024 * 1024  # the alert schema's attachment limit
TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


def sniff_photo(data: bytes) -> str:
    """Return a photo's media type from its first bytes; refuse anything but JPEG and PNG."""
    for magic, media_type in TYPES.items():
        if data.startswith(magic):
            return media_type
    raise MediaError("the photo must be a JPEG or PNG file")


def _reencode(data: bytes) -> bytes:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError("the photo cannot be decoded")
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise MediaError("the photo cannot be encoded")
    return encoded.tobytes()


def prepare_photo(hub, data: bytes, *, blur: bool = True) -> tuple[bytes, int]:
    """Make a photo fit to share: faces blurred unless opted out, metadata dropped."""
    if len(data) > MAX_PHOTO_BYTES:
        raise UsageError(f"the photo has {len(data)} bytes; the limit is {MAX_PHOTO_BYTES}")
    media_type = sniff_photo(data)
    if not blur:
        return _reencode(data), 0
    result = hub.pm.hook.porchlight_redact_faces(data=data, media_type=media_type)
    if result is None:
        raise MediaError("no face redaction plugin is installed; post with --no-blur to share "
                         "the photo unblurred")
    return result


def attachments_dir(data: DataDir) -> Path:
    """Return where the hub keeps shared and received attachments."""
    return data.root / "alerts" / "attachments"


def store_attachment(data: DataDir, content: bytes, media_type: str) -> dict:
    """Keep an attachment under its SHA-256; return its descriptor for the alert's claims."""
    digest = hashlib.sha256(content).hexdigest()
    folder = attachments_dir(data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / digest
    if not path.exists():
        tmp = folder / f".{digest}.tmp"
        tmp.write_bytes(content)
        os.replace(tmp, path)
    return {"sha256": digest, "size": len(content), "type": media_type}


def store_attachments(data: DataDir, items: list[tuple[bytes, str]]) -> tuple[list[dict], list[Path]]:
    """Keep several attachments; return their descriptors and the files this call created.

    The caller removes the created files if what it shares them with is not posted after all.
    """
    folder = attachments_dir(data)
    # Folders this call creates go too when the post fails, deepest last in the list.
    created = [p for p in (folder, folder.parent) if items and not p.exists()]
    descriptors = []
    try:
        for content, media_type in items:
            path = folder / hashlib.sha256(content).hexdigest()
            existed = path.exists()
            descriptors.append(store_attachment(data, content, media_type))
            if not existed:
                created.insert(0, path)
    except BaseException:
        remove_attachments(created)
        raise
    return descriptors, created


def remove_attachments(paths: list[Path]) -> None:
    """Delete the files and folders store_attachments created for a post that failed."""
    for path in paths:
        if path.is_dir():
            with contextlib.suppress(OSError):  # not empty: someone else's files are in it
                path.rmdir()
        else:
            path.unlink(missing_ok=True)


def load_attachment(data: DataDir, digest: str) -> bytes | None:
    """Return a stored attachment's bytes, or None."""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        return None
    path = attachments_dir(data) / digest
    return path.read_bytes() if path.exists() else None


def event_attachments(hub, event_id: str, identity, *, blur: bool = True,
                      roll: timedelta = timedelta(seconds=5)) -> tuple[list[tuple[bytes, str]], int]:
    """Prepare a motion event to share: its snapshot and its clip, faces blurred unless opted out.

    Nothing is stored here (see store_attachments). The clip travels to LAN neighbours only:
    the gateway stores no video, and a hub behind home NAT cannot be fetched from.
    """
    from hub.vault.footage import clip_bytes
    from hub.vault.media import SEGMENT_TYPE

    row = hub.db.execute("select camera, start, \"end\", snapshot_segment_id from events "
                         "where id = ?", [event_id]).fetchone()
    if row is None:
        raise UsageError(f"--event: no event {event_id!r} on this hub (see `porchlight events list`)")
    camera, start, end, snapshot_id = row
    shared, faces = [], 0
    by_id = {s.id: s for s in hub.vault.segments(camera)}
    if snapshot_id in by_id:
        photo, count = prepare_photo(hub, hub.vault.read(by_id[snapshot_id], identity), blur=blur)
        faces += count
        shared.append((photo, "image/jpeg"))
    begin, until = datetime.fromisoformat(start) - roll, datetime.fromisoformat(end) + roll
    segments = [s for s in hub.vault.segments(camera, begin, until)
                if s.media_type == SEGMENT_TYPE and s.status == "ok"]
    if segments:
        clip = clip_bytes(hub, segments, identity, begin, until)
        if blur:
            redacted = hub.pm.hook.porchlight_redact_faces(data=clip, media_type=SEGMENT_TYPE)
            if redacted is None:
                raise MediaError("no face redaction plugin is installed; post with --no-blur")
            clip, count = redacted
            faces += count
        if len(clip) <= MAX_CLIP_BYTES:
            shared.append((clip, SEGMENT_TYPE))
    if not shared:
        raise UsageError(f"--event: event {event_id} has neither a snapshot nor footage left")
    return shared, faces
