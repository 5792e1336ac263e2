"""The data dir: where a hub keeps its config, keys, database and vault."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from hub.config import CONFIG_NAME
from hub.errors import DataDirError

ENV_DATA = "PORCHLIGHT_DATA"
MARKER = "porchlight-hub"


def default_data_dir() -> Path:
    """Return PORCHLIGHT_DATA, else the platform's per-user data dir."""
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env)
    return Path(platformdirs.user_data_dir("porchlight", appauthor=False))


@dataclass(frozen=True)
class DataDir:
    """Paths of one hub's data dir (layout documented in docs/data-dir.md)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    @property
    def hub_key(self) -> Path:
        return self.root / "keys" / "hub-ed25519.pem"

    @property
    def identity(self) -> Path:
        return self.root / "keys" / "household.age"

    @property
    def recipient(self) -> Path:
        return self.root / "keys" / "household.pub"

    @property
    def vapid_key(self) -> Path:
        return self.root / "keys" / "vapid-p256.pem"

    @property
    def web_cert(self) -> Path:
        return self.root / "keys" / "web-cert.pem"

    @property
    def web_key(self) -> Path:
        return self.root / "keys" / "web-key.pem"

    @property
    def database(self) -> Path:
        return self.root / "porchlight.db"

    @property
    def vault(self) -> Path:
        return self.root / "vault"

    @property
    def tmp(self) -> Path:
        return self.root / "vault" / ".tmp"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    def require(self) -> DataDir:
        """Check that this is an existing hub's data dir; raise a clear error if not."""
        if not self.root.exists():
            raise DataDirError(
                f"no hub at {self.root}: create one with `porchlight init --data {self.root}`"
            )
        if not self.root.is_dir():
            raise DataDirError(f"{self.root} is not a directory")
        if not self.marker.exists() or not self.config.exists():
            raise DataDirError(f"{self.root} is not a Porchlight hub data dir (no {MARKER} file)")
        return self


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file with mode 0600, created atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A temp name of its own per writer: two writers of one file (a CLI command and the web UI
    # changing the household passphrase at once) must not write into, or rename, each other's.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries to disk, so a file just renamed or linked into it stays."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
