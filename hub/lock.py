"""One hub per data dir: exclusive flock locks on files in the data dir that name their holder.

`porchlight run` holds `hub.lock` while it runs; every command that writes holds `write.lock`
while it works. A lock file holds its holder's pid and command, and is removed on release, so a
data dir nobody works in looks exactly as it did. The kernel drops a flock when its process
dies, so a killed hub never leaves a stale lock behind, only a stale file that the next holder
takes over.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from hub.errors import PorchlightError

HUB_LOCK = "hub.lock"
WRITE_LOCK = "write.lock"
MAX_HOLDER_BYTES = 512


class LockHeld(PorchlightError):
    """Another process holds a lock on this data dir."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class DataDirLock:
    """An exclusive, non-blocking flock on one lock file of a data dir."""

    def __init__(self, root: Path, name: str, command: str) -> None:
        self.path = Path(root) / name
        self.command = command
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise LockHeld naming the holder ("pid N: command")."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = _describe(os.pread(fd, MAX_HOLDER_BYTES, 0))
                os.close(fd)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise LockHeld(f"held by {holder}", holder) from None
                raise
            # A holder that released between our open and our flock unlinked this file; a
            # lock on an unlinked file guards nothing, so start again on the current one.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.command}\n".encode()[:MAX_HOLDER_BYTES], 0)
        self.fd = fd

    def release(self) -> None:
        """Remove the lock file and drop the lock (in that order, so no one locks a dead file)."""
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def running_holder(root: Path, name: str = HUB_LOCK) -> str | None:
    """Say who holds a lock ("pid N: command") without taking it; None when nobody does.

    Reading only: taking even a shared lock for a moment could make a hub that starts at that
    moment fail. A lock file outlives its holder only when the holder was killed, so a file
    naming a process that is gone counts as free.
    """
    try:
        content = (Path(root) / name).read_bytes()[:MAX_HOLDER_BYTES]
    except FileNotFoundError:
        return None
    pid = content.decode("utf-8", "replace").partition(" ")[0]
    if pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, under another user
    return _describe(content)


def _same_file(fd: int, path: Path) -> bool:
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (current.st_dev, current.st_ino)


def _describe(content: bytes) -> str:
    pid, _, command = content.decode("utf-8", "replace").strip().partition(" ")
    if not pid.isdigit():
        return "a process that has not said who it is yet"
    return f"pid {pid}: {command or 'porchlight'}"
