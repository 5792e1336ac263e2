"""`porchlight backup`: stream a data dir into one age-encrypted archive, while the hub runs.

What touches disk, and why: the archive, only ever as age ciphertext (written beside its name
and renamed into place when whole); and a copy of each SQLite database taken with SQLite's
backup API, inside the data dir beside the database it copies (same disk, same content, mode
0600), removed as soon as it is in the archive. An in-memory copy would hold a years-old
segment index in RAM on a Pi; this copy exposes nothing the data dir does not already hold.
Nothing else is written: files go from the data dir through a tar stream into age by a pipe,
so memory stays flat however large the vault is.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sqlite3
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyrage

from hub.backup.archive import (
    DATA_PREFIX,
    MANIFEST,
    SEALED_HOUSEHOLD,
    SEALED_PASSPHRASE,
    VERSION,
    ArchiveWriter,
    BackupError,
    Digest,
)
from hub.config import load_config
from hub.datadir import DataDir, fsync_dir
from hub.db import UPGRADE_COPY, copy_database
from hub.household import key_derivation_progress, vault_recipients
from hub.lock import HUB_LOCK, WRITE_LOCK
from hub.passphrase_seal import seal
from hub.progress import progress_bar
from hub.timeutil import iso, utcnow

SQLITE_MAGIC = b"SQLite format 3\x00"
SNAPSHOT = re.compile(r"\.backup-(\d+)$")
COMPANIONS = ("-wal", "-shm", "-journal")
CHUNK = 1 << 20
# Backups the web UI is streaming to a browser (take_for_download): never part of a backup.
DOWNLOADS = "downloads"
DOWNLOAD_NAME = re.compile(r"^\.?backup-(\d+)-[0-9a-f]{16}\.tar(?:\.partial-\d+)?$")


@dataclass(frozen=True)
class BackupSummary:
    """What one backup holds."""

    path: Path
    sealed: str
    files: int
    segments: int
    size: int


def take_backup(root: Path, out: Path, *, with_footage: bool, passphrase: str | None = None,
                progress: bool = True) -> BackupSummary:
    """Write a backup of the hub in root to out: to the household's keys, or with a passphrase."""
    data = DataDir(Path(root)).require()
    out = Path(out).absolute()
    if out.exists():
        raise BackupError(f"{out} already exists; choose a new file name (a backup never "
                          "overwrites a file)")
    if out.resolve().is_relative_to(data.root.resolve()):
        raise BackupError(f"--out {out} is inside the data dir; write the backup somewhere else")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent} is not a directory")
    return _take(data, out, with_footage=with_footage, passphrase=passphrase, progress=progress)


def take_for_download(root: Path, *, with_footage: bool,
                      on_progress: Callable[[int, int], None] | None = None) -> BackupSummary:
    """Write a household-sealed backup into the data dir's downloads folder; return it.

    The web UI streams it to the owner's browser and removes it: the file's tar header for
    data.tar.age is written last, by seeking back, so the archive cannot go to a socket as it
    is made. The folder is the data dir's own (same disk, mode 0700), holds only age
    ciphertext, and is never walked into a backup; leftovers of a hub killed mid-download are
    removed by the next download.
    """
    data = DataDir(Path(root)).require()
    folder = data.root / DOWNLOADS
    folder.mkdir(mode=0o700, exist_ok=True)
    for path in folder.iterdir():
        match = DOWNLOAD_NAME.match(path.name)
        if match is None or not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
    out = folder / f"backup-{os.getpid()}-{secrets.token_hex(8)}.tar"
    return _take(data, out, with_footage=with_footage, passphrase=None, progress=False,
                 on_progress=on_progress)


def _take(data: DataDir, out: Path, *, with_footage: bool, passphrase: str | None,
          progress: bool, on_progress: Callable[[int, int], None] | None = None) -> BackupSummary:
    config = load_config(data.root)
    if passphrase is None:
        sealed, key = SEALED_HOUSEHOLD, data.identity.read_bytes()
        recipients = vault_recipients(data, config)
    else:
        sealed = SEALED_PASSPHRASE
        identity = pyrage.x25519.Identity.generate()
        with key_derivation_progress("Sealing the backup's key with your passphrase (age scrypt)"):
            key = seal(f"{identity}\n".encode(), passphrase,
                       config.vault.passphrase_work_factor)
        recipients = [identity.to_public()]
    _remove_stale_snapshots(data.root)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                writer = ArchiveWriter(handle, sealed, key)
                files, segments = _encrypt(writer.data, recipients, data, sealed, with_footage,
                                           progress, on_progress)
                size = writer.finish()
                handle.flush()
                os.fsync(handle.fileno())
            # A link, not a rename: it fails rather than replace a file made meanwhile.
            os.link(partial, out)
        finally:
            partial.unlink(missing_ok=True)
        fsync_dir(out.parent)
    except OSError as err:
        raise BackupError(f"could not write the backup {out}: {err.strerror or err}; no backup "
                          "was written") from err
    return BackupSummary(out, sealed, files, segments, size)


def _encrypt(sink, recipients, data: DataDir, sealed: str, with_footage: bool,
             progress: bool, on_progress=None) -> tuple[int, int]:
    """Stream the data dir's tar through age into sink: tar in this thread, age in another."""
    read_end, write_end = os.pipe()
    failed: list[BaseException] = []

    def seal() -> None:
        try:
            with open(read_end, "rb") as source:
                pyrage.encrypt_io(source, sink, recipients)
        except BaseException as err:  # reported by the tar side, which sees the broken pipe
            failed.append(err)

    thread = threading.Thread(target=seal, name="backup-age", daemon=True)
    thread.start()
    try:
        with open(write_end, "wb") as pipe:
            counts = _write_tar(pipe, data, sealed, with_footage, progress, on_progress)
    except BrokenPipeError:
        thread.join()
        _raise_failure(failed, sink)
        raise
    finally:
        thread.join()
    _raise_failure(failed, sink)
    return counts


def _raise_failure(failed: list[BaseException], sink) -> None:
    """Raise what stopped the age thread (writing the file, mostly) as the backup's failure."""
    if not failed:
        return
    if sink.error is not None:
        raise sink.error  # turned into "could not write the backup" by take_backup
    raise BackupError(f"could not encrypt the backup: {failed[0]}") from failed[0]


def _write_tar(pipe: BinaryIO, data: DataDir, sealed: str, with_footage: bool,
               progress: bool, on_progress=None) -> tuple[int, int]:
    """Write the data dir as a tar stream: small files, then footage, then the database."""
    digest = Digest()
    database = _snapshot(data.database)
    try:
        footage = _footage(database) if with_footage else []
        plan = list(_small_files(data.root, with_footage))
        total = sum(_size(p) for p in plan) + sum(row[2] for row in footage)
        total += database.stat().st_size
        bar = progress_bar(total, "B", "backup", progress)
        if on_progress is not None:
            bar = _Reporting(bar, total, on_progress)
        try:
            with tarfile.open(fileobj=pipe, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for path in plan:
                    relative = path.relative_to(data.root).as_posix()
                    if path.is_dir():
                        _add_dir(tar, path, relative, digest)
                    elif _is_sqlite(path):
                        snapshot = _snapshot(path)
                        try:
                            _add_file(tar, snapshot, relative, digest, bar, mode_of=path)
                        finally:
                            snapshot.unlink(missing_ok=True)
                    else:
                        try:
                            _add_file(tar, path, relative, digest, bar)
                        except FileNotFoundError:
                            continue  # removed since the walk (a replaced or expired file)
                vanished, kept, folders = [], 0, {"vault"}
                for segment_id, relative, _, status in footage:
                    try:
                        _add_parents(tar, data.root, relative, folders, digest)
                        _add_file(tar, data.root / relative, relative, digest, bar)
                        kept += 1
                    except FileNotFoundError:
                        # Deleted by retention since the copy of the index was taken: gone from
                        # the restored index too. A row flagged missing before stays flagged.
                        if status == "ok":
                            vanished.append(segment_id)
                _forget_segments(database, vanished if with_footage else None)
                _add_file(tar, database, data.database.name, digest, bar, mode_of=data.database)
                manifest = digest.manifest(version=VERSION, sealed=sealed,
                                           with_footage=with_footage, created=iso(utcnow()))
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode = len(manifest), 0o600
                tar.addfile(info, _BytesReader(manifest))
        finally:
            bar.close()
    finally:
        database.unlink(missing_ok=True)
    return digest.files, kept


def _size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() else 0
    except FileNotFoundError:
        return 0


def _small_files(root: Path, with_footage: bool) -> Iterator[Path]:
    """Yield the dirs and files to copy, in order; footage and the main database come apart."""
    skip_dirs = {root / "vault", root / "quarantine", root / DOWNLOADS}
    for current, dirs, files in os.walk(root):
        here = Path(current)
        dirs.sort()
        if here != root:
            yield here
        for name in sorted(dirs):
            if here / name in skip_dirs:
                dirs.remove(name)
                if name == "vault":
                    yield here / name  # the empty vault: the hub fills it
                elif name == "quarantine" and with_footage:
                    yield from _tree(here / name)
        names = set(files)
        for name in sorted(files):
            path = here / name
            if _skipped(root, path, names):
                continue
            yield path


def _tree(folder: Path) -> Iterator[Path]:
    yield folder
    for current, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(dirs):
            yield Path(current) / name
        for name in sorted(files):
            yield Path(current) / name


def _skipped(root: Path, path: Path, siblings: set[str]) -> bool:
    name = path.name
    if path.parent == root and name in (HUB_LOCK, WRITE_LOCK, "porchlight.db"):
        return True
    if UPGRADE_COPY.search(name) or SNAPSHOT.search(name):
        return True
    # A write in progress (hub/datadir.py write_private, hub/db.py copy_database).
    if name.endswith(".tmp") or (name.startswith(".") and ".partial-" in name):
        return True
    if any(name.endswith(s) and name[:-len(s)] in siblings for s in COMPANIONS):
        return True  # a SQLite database's journal: its snapshot holds what counts
    return not path.is_file()


def _footage(database: Path) -> list[tuple[str, str, int, str]]:
    """Return (id, path, size, status) of each segment the copy of the database indexes."""
    db = sqlite3.connect(database)
    try:
        return db.execute("select id, path, size, status from segments order by path").fetchall()
    finally:
        db.close()


def _forget_segments(database: Path, vanished: list[str] | None) -> None:
    """Drop from the copy the segments this backup does not hold (all of them when None)."""
    db = sqlite3.connect(database, isolation_level=None)
    try:
        db.execute("BEGIN")
        if vanished is None:
            db.execute("delete from holds")
            db.execute("delete from segments")
        else:
            for segment_id in vanished:
                db.execute("delete from holds where segment_id = ?", [segment_id])
                db.execute("delete from segments where id = ?", [segment_id])
        db.execute("COMMIT")
    finally:
        db.close()


def _snapshot(path: Path) -> Path:
    """Copy a live SQLite database beside itself with the backup API; return the copy."""
    if not path.is_file():
        raise BackupError(f"the hub has no database at {path}; nothing to back up")
    target = path.with_name(f"{path.name}.backup-{os.getpid()}")
    # Read-write, though it only reads: the last connection to a WAL database to close removes
    # its -wal and -shm files, and a read-only one cannot, leaving them behind.
    source = sqlite3.connect(path, timeout=30.0)
    try:
        copy_database(source, target)
    except sqlite3.Error as err:
        raise BackupError(f"could not copy the database {path.name}: {err}") from err
    finally:
        source.close()
    return target


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except FileNotFoundError:
        return False  # gone since the walk: skipped when it is copied


def _add_dir(tar: tarfile.TarFile, path: Path, relative: str, digest: Digest) -> None:
    info = tarfile.TarInfo(DATA_PREFIX + relative)
    info.type = tarfile.DIRTYPE
    stat = path.stat()
    info.mode, info.mtime = stat.st_mode & 0o777, int(stat.st_mtime)
    tar.addfile(info)
    digest.add_dir(relative)


def _add_parents(tar: tarfile.TarFile, root: Path, relative: str, added: set[str],
                 digest: Digest) -> None:
    """Add the folders above a file that the tar does not hold yet, with their own modes."""
    parents = list(Path(relative).parents)[:-1]  # without "."
    for parent in reversed(parents):
        name = parent.as_posix()
        if name not in added:
            _add_dir(tar, root / parent, name, digest)
            added.add(name)


def _add_file(tar: tarfile.TarFile, path: Path, relative: str, digest: Digest, bar,
              mode_of: Path | None = None) -> None:
    with open(path, "rb") as handle:
        stat = os.fstat(handle.fileno())
        info = tarfile.TarInfo(DATA_PREFIX + relative)
        info.size, info.mtime = stat.st_size, int(stat.st_mtime)
        info.mode = (mode_of.stat().st_mode if mode_of else stat.st_mode) & 0o777
        reader = _Hashing(handle, bar)
        tar.addfile(info, reader)
        if reader.read_bytes != stat.st_size:
            raise BackupError(f"{relative} changed while it was read; take the backup again")
    digest.add_file(relative, stat.st_size, reader.hash.hexdigest())


class _Hashing:
    """Read a file for the tar while hashing it and moving the progress bar."""

    def __init__(self, handle: BinaryIO, bar) -> None:
        self.handle = handle
        self.bar = bar
        self.hash = hashlib.sha256()
        self.read_bytes = 0

    def read(self, size: int = CHUNK) -> bytes:
        chunk = self.handle.read(size)
        self.hash.update(chunk)
        self.read_bytes += len(chunk)
        self.bar.update(len(chunk))
        return chunk


class _Reporting:
    """A progress bar that also tells a listener (the web UI's poll) the bytes done and total."""

    def __init__(self, bar, total: int, listener: Callable[[int, int], None]) -> None:
        self.bar = bar
        self.total = total
        self.done = 0
        self.listener = listener
        listener(0, total)

    def update(self, count: int) -> None:
        self.bar.update(count)
        self.done += count
        # The total is the sizes planned at the start; files that grew since (the database, a
        # log being written) make it more: never show more done than the whole.
        self.total = max(self.total, self.done)
        self.listener(self.done, self.total)

    def close(self) -> None:
        self.bar.close()
        self.listener(self.done, self.done)  # the whole backup: what was written


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)

    def read(self, size: int = -1) -> bytes:
        size = len(self.data) if size < 0 else size
        chunk, self.data = self.data[:size], self.data[size:]
        return bytes(chunk)


def _remove_stale_snapshots(root: Path) -> None:
    """Remove database copies left by a backup that was killed (its process is gone)."""
    for path in root.rglob("*.backup-*"):
        match = SNAPSHOT.search(path.name)
        if match and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
