"""The backup file: a plain tar of three members that the `tar` and `age` tools open by hand.

    porchlight-backup.json   what the file is and which passphrase opens it (plain JSON)
    key.age                  an age X25519 identity sealed with a passphrase (age scrypt)
    data.tar.age             age v1, to that identity's recipient: a tar of the data dir
                             (members data/...), ending with manifest.json

Sealed to the household (the default), key.age is the data dir's own keys/household.age, so
taking a backup needs no passphrase (like recording) and restoring needs only the file and the
household passphrase. Sealed with a passphrase, key.age is a fresh identity sealed with it.
The tar of the data dir is streamed through age, so the file's size is only known at its end:
its member header is written last, by seeking back (the file is written to disk, never to a
pipe).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from hub.errors import PorchlightError

FORMAT = "porchlight-backup"
VERSION = 1
HEADER = "porchlight-backup.json"
KEY = "key.age"
DATA = "data.tar.age"
DATA_PREFIX = "data/"
MANIFEST = "manifest.json"
SEALED_HOUSEHOLD = "household"
SEALED_PASSPHRASE = "passphrase"
BLOCK = tarfile.BLOCKSIZE
# Limits on what a backup file may claim: it is read before anything authenticates it.
MAX_HEADER_BYTES = 4096
MAX_KEY_BYTES = 64 * 1024
MAX_MANIFEST_BYTES = 64 * 1024
MAX_NAME_CHARS = 1024
MAX_DEPTH = 16
MAX_MEMBERS = 10_000_000


class BackupError(PorchlightError):
    """A backup could not be written, or a file is not a whole, authentic backup."""


@dataclass(frozen=True)
class OpenedArchive:
    """A backup file's outer layer, checked: its header, sealed key and where its data is."""

    path: Path
    sealed: str
    key: bytes
    data_offset: int
    data_size: int


def _member_header(name: str, size: int, mtime: float) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(mtime)
    # GNU format: a size of any length fits the one 512-byte block that is patched at the end.
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "strict")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


class _Counting:
    """A writer that counts what goes through it (age's output, whose length nobody knows ahead)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.written = 0
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            self.out.write(data)
        except OSError as err:
            self.error = err  # pyrage reports it only as text: keep it, to say what happened
            raise
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()


class ArchiveWriter:
    """Write the outer tar around a stream of age ciphertext, into a seekable file."""

    def __init__(self, out: BinaryIO, sealed: str, key: bytes) -> None:
        self.out = out
        self.mtime = time.time()
        header = json.dumps({"format": FORMAT, "version": VERSION, "sealed": sealed}).encode()
        for name, content in ((HEADER, header), (KEY, key)):
            out.write(_member_header(name, len(content), self.mtime))
            out.write(content + _padding(len(content)))
        self.data_header_at = out.tell()
        out.write(b"\0" * BLOCK)  # replaced by data.tar.age's header once its size is known
        self.data = _Counting(out)

    def finish(self) -> int:
        """End the tar, write data.tar.age's header in its place; return the file's size."""
        size = self.data.written
        self.out.write(_padding(size) + b"\0" * (2 * BLOCK))
        end = self.out.tell()
        self.out.write(b"\0" * (-end % tarfile.RECORDSIZE))  # whole records, as tar writes them
        end = self.out.tell()
        self.out.seek(self.data_header_at)
        self.out.write(_member_header(DATA, size, self.mtime))
        self.out.seek(end)
        return end


def open_archive(path: Path) -> OpenedArchive:
    """Read and check a backup file's outer tar; raise BackupError naming what is wrong."""
    path = Path(path)
    not_backup = BackupError(f"{path} is not a Porchlight backup (made by `porchlight backup`)")
    try:
        size = path.stat().st_size
        with tarfile.open(path, "r:") as tar:
            members = []
            while len(members) < 3 and (member := tar.next()) is not None:
                members.append(member)
            if [m.name for m in members] != [HEADER, KEY, DATA] or not all(
                    m.isreg() for m in members):
                raise not_backup
            header_member, key_member, data_member = members
            if header_member.size > MAX_HEADER_BYTES or key_member.size > MAX_KEY_BYTES:
                raise not_backup
            header = tar.extractfile(header_member).read()
            key = tar.extractfile(key_member).read()
    except (tarfile.TarError, UnicodeDecodeError, EOFError):
        raise not_backup from None
    except FileNotFoundError:
        raise BackupError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise not_backup from None
    try:
        fields = json.loads(header)
    except (ValueError, RecursionError):  # RecursionError: 4 KiB of nested brackets
        raise not_backup from None
    if not isinstance(fields, dict) or fields.get("format") != FORMAT:
        raise not_backup
    if fields.get("version") != VERSION:
        raise BackupError(f"{path} is a backup of format version {fields.get('version')!r}; "
                          f"this porchlight reads version {VERSION}: restore it with a newer "
                          "porchlight")
    sealed = fields.get("sealed")
    if sealed not in (SEALED_HOUSEHOLD, SEALED_PASSPHRASE) or len(key) != key_member.size:
        raise not_backup
    missing = data_member.offset_data + data_member.size - size
    if missing > 0:
        raise BackupError(f"{path} is incomplete: its last {missing} bytes are missing (a copy "
                          "that stopped early?); nothing was restored")
    return OpenedArchive(path, sealed, key, data_member.offset_data, data_member.size)


class Limited(io.RawIOBase):
    """Read one member's bytes of an open file, and no further."""

    def __init__(self, handle: BinaryIO, offset: int, size: int) -> None:
        handle.seek(offset)
        self.handle = handle
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self.left)
        if want <= 0:
            return 0
        data = self.handle.read(want)
        buffer[:len(data)] = data
        self.left -= len(data)
        return len(data)


class Digest:
    """A running digest of what a backup holds: each dir and file, its size and SHA-256, in order."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.files = 0
        self.bytes = 0

    def add_dir(self, path: str) -> None:
        """Count a directory."""
        self.hash.update(json.dumps(["d", path]).encode() + b"\n")

    def add_file(self, path: str, size: int, sha256: str) -> None:
        """Count a file."""
        self.hash.update(json.dumps(["f", path, size, sha256]).encode() + b"\n")
        self.files += 1
        self.bytes += size

    def manifest(self, **fields) -> bytes:
        """Return manifest.json: these fields, the counts, and the digest."""
        return json.dumps({**fields, "files": self.files, "bytes": self.bytes,
                           "digest": self.hash.hexdigest()}, indent=2).encode()


def member_path(name: str) -> str | None:
    """Return a data member's path inside the data dir, or None if the name is not a safe one."""
    if not name.startswith(DATA_PREFIX) or len(name) > MAX_NAME_CHARS or "\\" in name:
        return None
    relative = PurePosixPath(name[len(DATA_PREFIX):])
    parts = relative.parts
    if not parts or len(parts) > MAX_DEPTH or relative.is_absolute():
        return None
    if any(part in ("", ".", "..") or "\0" in part for part in parts):
        return None
    return relative.as_posix()
