"""`porchlight camera add|list|remove`: edit the cameras in config.toml, keeping the owner's comments."""

from __future__ import annotations

import os
import re
from pathlib import Path

import tomlkit
from pydantic import ValidationError

from hub.cameras.sources import split_credentials
from hub.config import CameraEntry, ConfigEdit, check_camera_name, describe
from hub.datadir import DataDir, write_private
from hub.errors import ConfigError, UsageError
from hub.plugins import build_plugin_manager, collect_types


def add_camera(data: DataDir, name: str, *, rtsp: str | None = None, sub_rtsp: str | None = None,
               synthetic: bool = False, scenario: str | None = None, mode: str = "continuous",
               analysis: bool = True) -> dict:
    """Add a camera to config.toml; a password in an RTSP URL moves to a secret file."""
    check_camera_name(name)
    if (rtsp is None) == (not synthetic):
        raise UsageError("say what the camera is: --rtsp URL or --synthetic")
    if scenario is not None and not synthetic:
        raise UsageError("--scenario is for --synthetic cameras")
    _check_analysis(mode, analysis)
    table = tomlkit.table()
    table["name"] = name
    secret: Path | None = None
    password: str | None = None
    if synthetic:
        table["type"] = "synthetic"
        if scenario is not None:
            table["scenario"] = scenario
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
    _set_mode(table, mode, analysis)
    return _commit(data, name, table, secret, password)


def _check_analysis(mode: str, analysis: bool) -> None:
    if mode == "motion" and not analysis:
        raise UsageError("--no-analysis does not go with --mode motion: a motion camera records "
                         "only around the motion that analysis finds")


def _set_mode(table, mode: str, analysis: bool) -> None:
    table["mode"] = mode
    if not analysis:
        table["analysis"] = False


def _commit(data: DataDir, name: str, table, secret: Path | None, password: str | None) -> dict:
    """Validate the new camera, write its secret (0600) and the config; undo the secret on failure."""
    with ConfigEdit(data.root) as edit:
        document = edit.document
        if any(c["name"] == name for c in document.get("cameras") or []):
            raise UsageError(f"camera {name!r} already exists; remove it first")
        _validate(table)
        if not document.get("cameras"):
            # Removing the last camera leaves `cameras = []`, an inline array that a [[cameras]]
            # table cannot join: start a fresh array of tables at the end of the file.
            document.pop("cameras", None)
            document["cameras"] = tomlkit.aot()
        document["cameras"].append(table)
        if secret is not None:
            write_private(secret, (password + "\n").encode())
        try:
            edit.save()
        except Exception:
            if secret is not None:
                secret.unlink(missing_ok=True)
            raise
    return {k: (str(v) if k != "password" else "(secret file)") for k, v in table.items()}


def _validate(table) -> None:
    """Check a new camera with its source plugin's config model before it is written."""
    try:
        entry = CameraEntry.model_validate(table.unwrap())
    except ValidationError as err:
        raise ConfigError(describe(err, f"camera {table['name']}")) from err
    types = collect_types(build_plugin_manager().hook.porchlight_camera_types(), "camera")
    source_type = types[entry.type]
    try:
        source_type.Config.model_validate(entry.model_dump(exclude=set(CameraEntry.HUB_KEYS)))
    except ValidationError as err:
        raise ConfigError(describe(err, f"camera {entry.name}")) from err


def remove_camera(data: DataDir, name: str) -> None:
    """Remove a camera from config.toml (its footage stays in the vault until retention)."""
    with ConfigEdit(data.root) as edit:
        document = edit.document
        cameras = document.get("cameras")
        index = next((i for i, c in enumerate(cameras or []) if c["name"] == name), None)
        if index is None:
            raise UsageError(f"no camera {name!r} in config.toml")
        del cameras[index]
        if not cameras:
            del document["cameras"]
        edit.save()
    (data.root / "secrets" / f"{name}.password").unlink(missing_ok=True)


def add_onvif_camera(data: DataDir, name: str, *, onvif: str, user: str | None,
                     password_file: Path | None, profile: str | None = None,
                     mode: str = "continuous", analysis: bool = True,
                     password: str | None = None) -> dict:
    """Add an ONVIF camera (HOST[:PORT]) to config.toml; its password goes to a secret file."""
    check_camera_name(name)
    _check_analysis(mode, analysis)
    host, port = _host_port(onvif)
    if password_file is not None:
        try:
            password = Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read the password file {password_file}: {err}") from err
        if not password:
            raise UsageError(f"the password file {password_file} is empty")
    table = tomlkit.table()
    table["name"] = name
    table["type"] = "onvif"
    table["host"] = host
    table["port"] = port
    if user:
        table["user"] = user
    secret = data.root / "secrets" / f"{name}.password"
    if password:
        inline = tomlkit.inline_table()
        inline["file"] = f"secrets/{name}.password"
        table["password"] = inline
    if profile is not None:
        table["profile"] = int(profile) if profile.isdigit() else profile
    _set_mode(table, mode, analysis)
    return _commit(data, name, table, secret if password else None, password)


def _host_port(text: str) -> tuple[str, int]:
    """Split HOST[:PORT] or [IPv6][:PORT]; ONVIF's default port is 80."""
    match = re.fullmatch(r"\[(?P<v6>[0-9a-fA-F:.]+)\](?::(?P<p6>\d{1,5}))?|"
                         r"(?P<host>[^\s:/@\[\]]+)(?::(?P<port>\d{1,5}))?", text.strip())
    port = match and (match["p6"] or match["port"])
    if not match or (port and not 0 < int(port) < 65536):
        raise UsageError(f"--onvif {text!r} is not HOST[:PORT] (example: 192.168.1.20:80)")
    return match["v6"] or match["host"], int(port) if port else 80


def rename_camera(data: DataDir, old: str, new: str) -> None:
    """Rename a camera in config.toml (footage already recorded keeps the old name)."""
    check_camera_name(new)
    with ConfigEdit(data.root) as edit:
        cameras = edit.document.get("cameras") or []
        if any(c["name"] == new for c in cameras):
            raise UsageError(f"camera {new!r} already exists")
        table = next((c for c in cameras if c["name"] == old), None)
        if table is None:
            raise UsageError(f"no camera {old!r} in config.toml")
        table["name"] = new
        old_secret = data.root / "secrets" / f"{old}.password"
        new_secret = data.root / "secrets" / f"{new}.password"
        password = table.get("password")
        moves_secret = (hasattr(password, "get")
                        and password.get("file") == f"secrets/{old}.password"
                        and old_secret.exists())
        if moves_secret:
            password["file"] = f"secrets/{new}.password"
            os.link(old_secret, new_secret)
        try:
            edit.save()
        except Exception:
            if moves_secret:
                new_secret.unlink(missing_ok=True)
            raise
    if moves_secret:
        old_secret.unlink(missing_ok=True)


def set_motion_areas(data: DataDir, name: str, masks: list, zones: dict) -> None:
    """Store a camera's motion masks and zones where its motion detector reads them."""
    with ConfigEdit(data.root) as edit:
        _set_motion_areas(edit.document, name, masks, zones)
        edit.save()


def _set_motion_areas(document, name: str, masks: list, zones: dict) -> None:
    table = next((c for c in document.get("cameras") or [] if c["name"] == name), None)
    if table is None:
        raise UsageError(f"no camera {name!r} in config.toml")
    settings = dict(table.get("motion", {}).unwrap()) if "motion" in table else {}
    settings["masks"] = [[list(p) for p in polygon] for polygon in masks]
    settings["zones"] = {zone: [list(p) for p in polygon] for zone, polygon in zones.items()}
    kind = settings.get("type", "motion")
    detectors = collect_types(build_plugin_manager().hook.porchlight_detector_types(), "detector")
    if kind not in detectors:
        raise ConfigError(f"camera {name}: unknown detector {kind!r}")
    try:
        detectors[kind].Config.model_validate(settings)
    except ValidationError as err:
        raise ConfigError(describe(err, f"camera {name}: motion")) from err
    motion = tomlkit.table()
    for key, value in settings.items():
        motion[key] = value
    table["motion"] = motion


def set_camera_switches(data: DataDir, name: str, *, recording: bool | None = None,
                        analysis: bool | None = None) -> None:
    """Turn a camera's recording or motion analysis on or off in config.toml (a running hub follows)."""
    with ConfigEdit(data.root) as edit:
        _set_switches(edit.document, name, recording, analysis)
        edit.save()


def _set_switches(document, name: str, recording: bool | None, analysis: bool | None) -> None:
    table = next((c for c in document.get("cameras") or [] if c["name"] == name), None)
    if table is None:
        raise UsageError(f"no camera {name!r} in config.toml")
    if analysis is False and table.get("mode", "continuous") == "motion":
        raise UsageError(f"camera {name} records only around motion (mode = \"motion\"): its "
                         "motion analysis cannot be turned off")
    for key, value in (("recording", recording), ("analysis", analysis)):
        if value is None:
            continue
        if value:
            table.pop(key, None)  # on is the default: the config stays as the owner wrote it
        else:
            table[key] = False
