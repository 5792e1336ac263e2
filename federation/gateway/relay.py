"""The gateway's sealed-clip relay: ciphertext on disk from a hub's upload to the agency's pickup.

A hub uploads each sealed clip (an age v1 file, encrypted to the agency's recipient) before
its answer lists it. The upload streams to a temporary file while its SHA-256 is computed; the
file is moved into place only when the digest equals the clip's name and the signed
Content-Digest, so a partial or altered upload never becomes visible. Files live under
``<data dir>/clips/<request id>/<sha256>.age`` until the agency confirms pickup or
``clip_ttl_s`` passes. The gateway holds no key that opens them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from federation.errors import FederationError
from federation.hop import HopDigestError
from federation.neighbourhood_log import check_request_id
from federation.sealed import AGE_MAGIC

log = logging.getLogger(__name__)

CLIPS_DIR = "clips"
CHUNK = 256 * 1024


class ClipRejected(FederationError):
    """An uploaded clip is not acceptable as sent."""

    default_reason = "clip_rejected"


@dataclass(frozen=True)
class StoredClip:
    """A sealed clip written to disk."""

    sha256: str
    size: int
    path: Path


class ClipStore:
    """Sealed clips on disk, written and read off the event loop."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.root = Path(data_dir) / CLIPS_DIR
        self.root.mkdir(mode=0o700, exist_ok=True)
        self._io = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gateway-clips")
        self._remove_leftovers()

    def close(self) -> None:
        """Stop the I/O threads."""
        self._io.shutdown(wait=True)

    def path(self, request_id: str, sha256: str) -> Path:
        """Return where a clip lives."""
        check_request_id(request_id)
        return self.root / request_id / f"{sha256}.age"

    def _remove_leftovers(self) -> None:
        # Uploads that were cut off by a crash left temporary files; they were never accepted.
        for tmp in self.root.glob("*/*.tmp-*"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    async def _call(self, fn, *args):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    async def receive(
        self,
        request_id: str,
        sha256: str,
        chunks: AsyncIterator[bytes],
        *,
        length: int,
        signed_digests: dict[str, bytes],
    ) -> StoredClip:
        """Stream an upload to disk, check its length, digests and age header, then keep it."""
        final = self.path(request_id, sha256)
        await self._call(lambda: final.parent.mkdir(mode=0o700, exist_ok=True))
        tmp = final.with_name(f"{final.name}.tmp-{secrets.token_hex(4)}")
        sha = hashlib.sha256()
        extra = hashlib.sha512() if "sha-512" in signed_digests else None
        received = 0
        head = b""
        fh = await self._call(open, tmp, "xb")
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > length:
                    raise ClipRejected(
                        f"the body is longer than its Content-Length {length}",
                        reason="length_mismatch",
                    )
                if len(head) < len(AGE_MAGIC):
                    head += chunk[: len(AGE_MAGIC) - len(head)]
                sha.update(chunk)
                if extra is not None:
                    extra.update(chunk)
                await self._call(fh.write, chunk)
            await self._call(_flush_and_sync, fh)
            if received != length:
                raise ClipRejected(
                    f"the body ended after {received} of {length} bytes", reason="length_mismatch"
                )
            if sha.hexdigest() != sha256 or sha.digest() != signed_digests["sha-256"]:
                raise HopDigestError(
                    "the body's SHA-256 is not the clip's name and the signed Content-Digest; "
                    "the clip was altered or cut off",
                    reason="digest_mismatch",
                )
            if extra is not None and extra.digest() != signed_digests["sha-512"]:
                raise HopDigestError(
                    "Content-Digest sha-512 does not match the body", reason="digest_mismatch"
                )
            if head != AGE_MAGIC:
                raise ClipRejected(
                    "a clip must be sealed: an age v1 file encrypted to the agency's recipient",
                    reason="not_age",
                )
            await self._call(os.replace, tmp, final)
        except BaseException:
            await asyncio.shield(self._call(_discard, fh, tmp))
            raise
        await self._call(fh.close)
        return StoredClip(sha256=sha256, size=received, path=final)

    async def read_chunks(self, request_id: str, sha256: str) -> AsyncIterator[bytes]:
        """Yield a stored clip's bytes in chunks."""
        fh = await self._call(open, self.path(request_id, sha256), "rb")
        try:
            while chunk := await self._call(fh.read, CHUNK):
                yield chunk
        finally:
            await self._call(fh.close)

    def exists(self, request_id: str, sha256: str) -> bool:
        """Tell whether a clip's file is on disk."""
        return self.path(request_id, sha256).is_file()

    def delete(self, request_id: str, sha256: str) -> bool:
        """Delete a clip's file (and its request's directory once empty)."""
        path = self.path(request_id, sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError):
            path.parent.rmdir()
        return True


def _flush_and_sync(fh) -> None:  # type: ignore[no-untyped-def]
    fh.flush()
    os.fsync(fh.fileno())


def _discard(fh, tmp: Path) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(OSError):
        fh.close()
    with contextlib.suppress(OSError):
        tmp.unlink()
