"""`porchlight restore`: fill an empty dir from a backup, all or nothing.

The passphrase opens the backup's own key.age (the household key, or the backup's key), so
restoring needs only the file and the passphrase. The archive is unpacked into a hidden folder
inside the target and moved into place only once all of it has authenticated (age) and matches
its manifest; anything less removes the folder and leaves the target as empty as it was.
Everything inside the archive is treated as outside input: only plain files and folders, at
safe relative paths, with modes no wider than 0644 and 0755.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pyrage

from hub.backup.archive import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_MEMBERS,
    SEALED_HOUSEHOLD,
    VERSION,
    BackupError,
    Digest,
    Limited,
    OpenedArchive,
    member_path,
    open_archive,
)
from hub.datadir import MARKER, DataDir, fsync_dir
from hub.errors import DataDirError, PassphraseError
from hub.household import key_derivation_progress
from hub.passphrase_seal import SealError, open_sealed
from hub.progress import progress_bar

CHUNK = 1 << 20
MAX_EXTENDED_HEADER = 64 * 1024  # a pax header holds a path or two: ours are under 1 KiB


@dataclass(frozen=True)
class RestoreSummary:
    """What one restore wrote."""

    root: Path
    files: int
    segments: int
    with_footage: bool
    created: str


def check_empty(root: Path) -> None:
    """Refuse a target that exists and is not an empty directory."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DataDirError(f"{root} is not a directory: restore into a new or empty directory")
    if root.exists() and any(root.iterdir()):
        raise DataDirError(f"{root} is not empty: restore into a new or empty directory")


def open_for_restore(archive: Path, root: Path) -> OpenedArchive:
    """Check the target and the backup's outer layer, before any passphrase is asked."""
    check_empty(root)
    return open_archive(archive)


def unlock(opened: OpenedArchive, passphrase: str) -> pyrage.x25519.Identity:
    """Open the backup's key with the passphrase; raise PassphraseError if it is wrong."""
    with key_derivation_progress("Unlocking the backup's key (age scrypt)"):
        try:
            plain = open_sealed(opened.key, passphrase)
        except SealError:
            if opened.sealed == SEALED_HOUSEHOLD:
                raise PassphraseError("wrong passphrase for this backup (it opens with the "
                                      "household passphrase of when it was taken)") from None
            raise PassphraseError("wrong passphrase for this backup") from None
    try:
        return pyrage.x25519.Identity.from_str(plain.decode().strip())
    except (UnicodeDecodeError, pyrage.IdentityError):
        raise _damaged(opened) from None


def restore_backup(opened: OpenedArchive, identity: pyrage.x25519.Identity, root: Path,
                   progress: bool = True) -> RestoreSummary:
    """Unpack an opened backup into root (new or empty); all or nothing."""
    root = Path(root)
    check_empty(root)
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = root / f".restore-{os.getpid()}"
    try:
        staging.mkdir(mode=0o700)
        manifest = _extract(opened, identity, staging, progress)
        _check_hub(opened, staging)
        for entry in sorted(staging.iterdir()):
            os.rename(entry, root / entry.name)
        staging.rmdir()
        fsync_dir(root)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(root, ignore_errors=True)
        if isinstance(err, OSError):
            raise BackupError(f"could not restore into {root}: {err.strerror or err}; nothing "
                              "was restored") from err
        raise
    segments = _segments(root) if manifest.get("with_footage") else 0
    return RestoreSummary(root, manifest["files"], segments, bool(manifest.get("with_footage")),
                          str(manifest.get("created", "")))


def _extract(opened: OpenedArchive, identity, staging: Path, progress: bool) -> dict:
    """Decrypt data.tar.age in a thread and unpack its tar here; return its checked manifest."""
    read_end, write_end = os.pipe()
    failed: list[BaseException] = []

    def decrypt() -> None:
        try:
            with open(opened.path, "rb") as handle, open(write_end, "wb") as sink:
                pyrage.decrypt_io(Limited(handle, opened.data_offset, opened.data_size), sink,
                                  [identity])
        except BrokenPipeError:
            pass  # the tar side stopped reading: it reports why
        except BaseException as err:
            failed.append(err)

    thread = threading.Thread(target=decrypt, name="restore-age", daemon=True)
    thread.start()
    bar = progress_bar(opened.data_size, "B", "restore", progress)
    try:
        # Closing the pipe's read end (leaving this block) frees a decrypt thread blocked on it.
        with open(read_end, "rb") as pipe:
            manifest = _unpack(pipe, staging, bar, opened)
            # Drain: age checks the end of its stream only once all of it is read.
            while pipe.read(CHUNK):
                pass
    except (tarfile.TarError, EOFError, BackupError) as err:
        thread.join()
        if failed:  # the tar ended early because the decryption failed: that is the cause
            raise _unauthentic(opened) from None
        if isinstance(err, BackupError):
            raise
        raise _damaged(opened) from None
    finally:
        bar.close()
        thread.join()
    if failed:
        raise _unauthentic(opened)
    return manifest


def _unpack(pipe, staging: Path, bar, opened: OpenedArchive) -> dict:
    digest = Digest()
    seen: set[str] = set()
    manifest = None
    with tarfile.open(fileobj=pipe, mode="r|", tarinfo=_BoundedInfo) as tar:
        for count, member in enumerate(tar, start=1):
            if manifest is not None or count > MAX_MEMBERS:
                raise _damaged(opened)  # nothing may follow the manifest
            if member.name == MANIFEST and member.isreg() and member.size <= MAX_MANIFEST_BYTES:
                manifest = _parse_manifest(tar.extractfile(member).read(), opened)
                continue
            relative = member_path(member.name)
            if relative is None or relative in seen or not (member.isreg() or member.isdir()):
                raise _damaged(opened)
            seen.add(relative)
            target = staging / relative
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.chmod(target, (member.mode & 0o755) | 0o700)
                digest.add_dir(relative)
                continue
            if not target.parent.is_dir():
                target.parent.mkdir(parents=True, mode=0o700)
            sha256 = _write(tar.extractfile(member), target, member.mode & 0o644, bar)
            os.utime(target, (member.mtime, member.mtime))
            digest.add_file(relative, member.size, sha256)
    if manifest is None:
        raise _damaged(opened)
    if (manifest.get("files"), manifest.get("bytes"), manifest.get("digest")) != (
            digest.files, digest.bytes, digest.hash.hexdigest()):
        raise _damaged(opened)
    return manifest


class _BoundedInfo(tarfile.TarInfo):
    """A tar header whose extended headers (pax, GNU long names) tarfile reads only if small."""

    def _proc_member(self, tarfile_: tarfile.TarFile):
        if self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                         tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) and (
                self.size > MAX_EXTENDED_HEADER):
            # tarfile would read all of it into memory, before we see a name to refuse.
            raise tarfile.HeaderError("extended header too large")
        return super()._proc_member(tarfile_)


def _parse_manifest(raw: bytes, opened: OpenedArchive) -> dict:
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError):
        raise _damaged(opened) from None
    if not isinstance(manifest, dict) or manifest.get("version") != VERSION or (
            manifest.get("sealed") != opened.sealed):
        # The plain header outside the encryption must say what the manifest inside says.
        raise _damaged(opened)
    return manifest


def _write(source, target: Path, mode: int, bar) -> str:
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            bar.update(len(chunk))
        out.flush()
        os.fsync(out.fileno())
        os.fchmod(out.fileno(), mode)
    return digest.hexdigest()


def _check_hub(opened: OpenedArchive, staging: Path) -> None:
    """Check that what was unpacked is a hub whose database opens whole."""
    data = DataDir(staging)
    if not data.marker.is_file() or not data.config.is_file() or not data.database.is_file():
        raise BackupError(f"{opened.path} holds no hub data dir (no {MARKER}, config or "
                          "database); nothing was restored")
    try:
        # Read-write, though it only reads: closing it removes the -wal and -shm files that a
        # database in WAL mode gets on opening, where a read-only connection would leave them.
        db = sqlite3.connect(data.database)
        try:
            result = db.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        result = "unreadable"
    if result != "ok":
        raise _damaged(opened)


def _segments(root: Path) -> int:
    db = sqlite3.connect(f"file:{root / 'porchlight.db'}?mode=ro", uri=True)
    try:
        return db.execute("select count(*) from segments").fetchone()[0]
    finally:
        db.close()


def _damaged(opened: OpenedArchive) -> BackupError:
    return BackupError(f"{opened.path} is damaged: its contents are not a whole backup; "
                       "nothing was restored")


def _unauthentic(opened: OpenedArchive) -> BackupError:
    return BackupError(f"{opened.path} is damaged or was altered: its encrypted contents do not "
                       "authenticate; nothing was restored")
