"""The gateway's alert-photo relay: JPEG and PNG bytes on disk until their alert expires.

Hubs sit behind NAT, so a neighbour beyond the LAN cannot fetch an alert's photo from its
author: the author uploads it to the gateway and the alert's recipients fetch it from there.
An upload streams to a temporary file while its SHA-256 is computed; it is kept only if its
length, digest and first and last bytes are those of the JPEG or PNG the signed alert lists.
The gateway relays photos only: never video, never any other file.

Files live under ``<data dir>/attachments/<alert id>/<sha256>``. A file is moved into place
inside the database transaction that records it, and ``sweep_orphan_photos`` deletes, inside a
transaction too, every file whose row is gone (its alert expired or was withdrawn when its
author was blocked), so the two never disagree for longer than one sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federation.errors import FederationError
from federation.gateway.errors import NotAPhoto
from federation.gateway.store import GatewayStore
from federation.hop import HopDigestError

log = logging.getLogger(__name__)

PHOTOS_DIR = "attachments"
CHUNK = 256 * 1024
# How long a temporary file may sit before a sweep treats it as left over by a crash.
STALE_TMP_S = 3600.0
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TMP = ".tmp-"

# What a photo starts and ends with. A JPEG is SOI ... EOI; a PNG is its signature ... IEND.
# Checking both ends refuses a video (an MP4 starts with a "ftyp" box) and a video with a
# photo's first bytes glued on; the gateway never decodes images itself.
PHOTO_MAGIC: dict[str, tuple[bytes, bytes]] = {
    "image/jpeg": (b"\xff\xd8\xff", b"\xff\xd9"),
    "image/png": (b"\x89PNG\r\n\x1a\n", b"\x00\x00\x00\x00IEND\xaeB`\x82"),
}
PHOTO_TYPES: tuple[str, ...] = tuple(PHOTO_MAGIC)
_EDGE = max(len(part) for pair in PHOTO_MAGIC.values() for part in pair)


class PhotoRejected(FederationError):
    """An uploaded photo is not acceptable as sent."""

    default_reason = "photo_rejected"


def check_photo(head: bytes, tail: bytes, media_type: str) -> None:
    """Raise NotAPhoto unless the bytes begin and end like a photo of the listed type."""
    edges = PHOTO_MAGIC.get(media_type) if isinstance(media_type, str) else None
    if edges is None:
        raise NotAPhoto(
            f"the gateway relays JPEG and PNG photos only, not {str(media_type)[:64]!r}; "
            "neighbours fetch anything else from the author's hub on the LAN"
        )
    magic, trailer = edges
    if not (bytes(head).startswith(magic) and bytes(tail).endswith(trailer)):
        raise NotAPhoto(
            f"the body is not a complete {media_type} file (checked by its first and last "
            "bytes); only photos are relayed, never video"
        )


def is_sha256_hex(value: object) -> bool:
    """Tell whether a value is a lower-case hex SHA-256 (an alert id or a photo's name)."""
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


@dataclass(frozen=True)
class PendingPhoto:
    """A received photo in its temporary file, checked, not yet moved into place."""

    alert_id: str
    sha256: str
    size: int
    media_type: str
    tmp: Path
    final: Path


class PhotoStore:
    """Alert photos on disk, written and read off the event loop."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.root = Path(data_dir) / PHOTOS_DIR
        self.root.mkdir(mode=0o700, exist_ok=True)
        self._io = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gateway-photos")
        # Uploads cut off by a crash left temporary files; they were never accepted.
        _sweep_files(self.root, keep=None, tmp_older_than=0.0)

    def close(self) -> None:
        """Stop the I/O threads."""
        self._io.shutdown(wait=True)

    def path(self, alert_id: str, sha256: str) -> Path:
        """Return where a photo lives."""
        if not (is_sha256_hex(alert_id) and is_sha256_hex(sha256)):
            raise ValueError("alert ids and photo names are lower-case hex SHA-256 digests")
        return self.root / alert_id / sha256

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    async def receive(
        self,
        alert_id: str,
        sha256: str,
        chunks: AsyncIterator[bytes],
        *,
        length: int,
        media_type: str,
        signed_digests: dict[str, bytes],
    ) -> PendingPhoto:
        """Stream an upload to a temporary file and check its length, digests and type."""
        final = self.path(alert_id, sha256)
        tmp = final.with_name(f"{final.name}{_TMP}{secrets.token_hex(4)}")
        sha = hashlib.sha256()
        extra = hashlib.sha512() if "sha-512" in signed_digests else None
        received = 0
        head = b""
        tail = b""
        fh = await self._call(_open_tmp, tmp)
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > length:
                    raise PhotoRejected(
                        f"the body is longer than its Content-Length {length}",
                        reason="length_mismatch",
                    )
                if len(head) < _EDGE:
                    head += chunk[: _EDGE - len(head)]
                tail = (tail + chunk)[-_EDGE:]
                sha.update(chunk)
                if extra is not None:
                    extra.update(chunk)
                await self._call(fh.write, chunk)
            await self._call(_flush_and_sync, fh)
            await self._call(fh.close)
            if received != length:
                raise PhotoRejected(
                    f"the body ended after {received} of {length} bytes", reason="length_mismatch"
                )
            if sha.hexdigest() != sha256 or sha.digest() != signed_digests["sha-256"]:
                raise HopDigestError(
                    "the body's SHA-256 is not the photo's name and the signed Content-Digest; "
                    "the photo was altered or cut off",
                    reason="digest_mismatch",
                )
            if extra is not None and extra.digest() != signed_digests["sha-512"]:
                raise HopDigestError(
                    "Content-Digest sha-512 does not match the body", reason="digest_mismatch"
                )
            check_photo(head, tail, media_type)
        except BaseException:
            await asyncio.shield(self._call(_discard, fh, tmp))
            raise
        return PendingPhoto(alert_id, sha256, received, media_type, tmp, final)

    @staticmethod
    def place(pending: PendingPhoto) -> None:
        """Move a checked photo into place (call inside the transaction that records it)."""
        os.replace(pending.tmp, pending.final)

    async def discard(self, pending: PendingPhoto) -> None:
        """Delete a received photo that will not be kept."""
        await self._call(_discard, None, pending.tmp)

    async def read_chunks(self, alert_id: str, sha256: str) -> AsyncIterator[bytes]:
        """Yield a stored photo's bytes in chunks."""
        fh = await self._call(open, self.path(alert_id, sha256), "rb")
        try:
            while chunk := await self._call(fh.read, CHUNK):
                yield chunk
        finally:
            await self._call(fh.close)


def sweep_orphan_photos(store: GatewayStore, data_dir: str | os.PathLike[str]) -> int:
    """Delete every photo file whose alert is gone (expired or withdrawn); return how many."""
    root = Path(data_dir) / PHOTOS_DIR
    if not root.is_dir():
        return 0
    # Inside a write transaction: an upload moves its file into place inside its own, so a
    # file is never seen here between its move and its row's commit.
    with store.transaction() as db:
        keep = {
            (row[0], row[1]) for row in db.execute("SELECT alert_id, sha256 FROM alert_attachments")
        }
        return _sweep_files(root, keep=keep, tmp_older_than=STALE_TMP_S)


def _sweep_files(root: Path, *, keep: set[tuple[str, str]] | None, tmp_older_than: float) -> int:
    # keep None: only temporary files are removed.
    deleted = 0
    now = time.time()
    for folder in list(root.iterdir()):
        if not folder.is_dir():
            continue
        for path in list(folder.iterdir()):
            if _TMP in path.name:
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime >= tmp_older_than:
                        path.unlink()
                continue
            if keep is not None and (folder.name, path.name) not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()
                    deleted += 1
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds once the folder is empty
    if deleted:
        log.info("deleted %s photos whose alerts are gone", deleted)
    return deleted


def _open_tmp(tmp: Path) -> Any:
    # A sweep removes empty alert folders; one may go between mkdir and open, so try again.
    for _ in range(3):
        tmp.parent.mkdir(mode=0o700, exist_ok=True)
        try:
            return open(tmp, "xb")
        except FileNotFoundError:
            continue
    raise FileNotFoundError(tmp)


def _flush_and_sync(fh: Any) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _discard(fh: Any, tmp: Path) -> None:
    if fh is not None:
        with contextlib.suppress(OSError):
            fh.close()
    with contextlib.suppress(OSError):
        tmp.unlink()
    with contextlib.suppress(OSError):
        tmp.parent.rmdir()  # only succeeds once the alert's folder is empty
