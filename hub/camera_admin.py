"""`porchlight camera add|list|remove`: edit the cameras in config.toml, keeping the owner's comments."""

from __future__ import annotations

import os
from pathlib import Path

import tomlkit
from pydantic import ValidationError

from .cameras import split_credentials
from .config import CAMERA_NAME, CONFIG_NAME, CameraEntry, describe, parse_config
from .datadir import DataDir, write_private
from .errors import ConfigError, UsageError
from .plugins import build_plugin_manager, collect_types


def _load(data: DataDir) -> tomlkit.TOMLDocument:
    return tomlkit.parse(data.config.read_text(encoding="utf-8"))


def _save(data: DataDir, document: tomlkit.TOMLDocument) -> None:
    text = tomlkit.dumps(document)
    parse_config(text)  # never write a config the hub would refuse
    tmp = data.config.with_name(CONFIG_NAME + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, data.config)


def add_camera(data: DataDir, name: str, *, rtsp: str | None = None, sub_rtsp: str | None = None,
               synthetic: bool = False, mode: str = "continuous") -> dict:
    """Add a camera to config.toml; a password in an RTSP URL moves to a secret file."""
    if not CAMERA_NAME.match(name):
        raise UsageError(f"camera name {name!r} is not valid: use 1-32 of a-z, 0-9, '-' and '_', "
                         "starting with a letter or digit")
    if (rtsp is None) == (not synthetic):
        raise UsageError("say what the camera is: --rtsp URL or --synthetic")
    document = _load(data)
    cameras = document.get("cameras")
    if cameras is not None and any(c["name"] == name for c in cameras):
        raise UsageError(f"camera {name!r} already exists; remove it first")
    table = tomlkit.table()
    table["name"] = name
    secret: Path | None = None
    if synthetic:
        table["type"] = "synthetic"
    else:
        url, user, password = split_credentials(rtsp)
        table["type"] = "rtsp"
        table["url"] = url
        if sub_rtsp:
            table["sub_url"] = split_credentials(sub_rtsp)[0]
        if user:
            table["user"] = user
        if password:
            secret = data.root / "secrets" / f"{name}.password"
            inline = tomlkit.inline_table()
            inline["file"] = f"secrets/{name}.password"
            table["password"] = inline
    table["mode"] = mode
    _validate(table)
    if cameras is None:
        document["cameras"] = tomlkit.aot()
    document["cameras"].append(table)
    if secret is not None:
        write_private(secret, (password + "\n").encode())
    try:
        _save(data, document)
    except Exception:
        if secret is not None:
            secret.unlink(missing_ok=True)
        raise
    return {k: (str(v) if k != "password" else "(secret file)") for k, v in table.items()}


def _validate(table) -> None:
    """Check a new camera with its source plugin's config model before it is written."""
    entry = CameraEntry.model_validate(table.unwrap())
    types = collect_types(build_plugin_manager().hook.porchlight_camera_types(), "camera")
    source_type = types[entry.type]
    try:
        source_type.Config.model_validate(entry.model_dump(exclude=set(CameraEntry.HUB_KEYS)))
    except ValidationError as err:
        raise ConfigError(describe(err, f"camera {entry.name}")) from err


def remove_camera(data: DataDir, name: str) -> None:
    """Remove a camera from config.toml (its footage stays in the vault until retention)."""
    document = _load(data)
    cameras = document.get("cameras")
    index = next((i for i, c in enumerate(cameras or []) if c["name"] == name), None)
    if index is None:
        raise UsageError(f"no camera {name!r} in config.toml")
    del cameras[index]
    _save(data, document)
    (data.root / "secrets" / f"{name}.password").unlink(missing_ok=True)
