"""`porchlight init`: create a hub's data dir with its keys, config and database."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from federation.keys import generate_signing_key, save_private_key
from hub.config import parse_config, render_config
from hub.datadir import MARKER, DataDir
from hub.db import connect
from hub.errors import DataDirError, UsageError
from hub.household import check_new_passphrase, create_household_identity
from hub.passphrase_seal import DEFAULT_WORK_FACTOR
from hub.web.tls import make_self_signed


def parse_location(text: str) -> tuple[float, float]:
    """Parse LAT,LON in decimal degrees."""
    try:
        lat_text, lon_text = text.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise UsageError(f"--location: {text!r} is not LAT,LON (example: 51.5007,-0.1246)") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise UsageError(f"--location: {text!r} is outside -90..90, -180..180")
    return lat, lon


def create_hub(
    root: Path, passphrase: str, name: str | None = None, location: tuple[float, float] | None = None,
    work_factor: int = DEFAULT_WORK_FACTOR,
) -> DataDir:
    """Create a new hub in root (absent or empty); never overwrite an existing one."""
    root = Path(root)
    if (root / MARKER).exists() or (root / "config.toml").exists():
        raise DataDirError(f"{root} already holds a hub; refusing to overwrite it")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DataDirError(f"{root} exists and is not empty; choose a new or empty directory")
    check_new_passphrase(passphrase)
    config_text = render_config(name or socket.gethostname(), location, work_factor)
    parse_config(config_text)  # what we write must be what we accept
    # Build the hub beside its destination and rename it into place, so an interrupted init
    # never leaves a half-made hub behind.
    staging = root.parent / f".{root.name}.init-{os.getpid()}"
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
    except OSError as err:
        # The hub is staged beside its place: a folder that cannot hold it (a file, a read-only
        # or foreign folder, the root of a container) stops here, before anything is written.
        raise DataDirError(f"cannot create a hub in {root}: {root.parent} is not a folder this "
                           f"user can write in ({err.strerror})") from None
    try:
        data = DataDir(staging)
        (staging / "keys").mkdir(mode=0o700)
        save_private_key(generate_signing_key(), data.hub_key)
        create_household_identity(data, passphrase, work_factor)
        make_self_signed(data.web_cert, data.web_key, name or socket.gethostname())
        data.config.write_text(config_text, encoding="utf-8")
        connect(data.database).conn.close()
        data.vault.mkdir()
        data.marker.write_text("1\n", encoding="utf-8")
        if root.exists():
            root.rmdir()
        os.rename(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return DataDir(root)
