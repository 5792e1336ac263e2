"""Settings, for owners: cameras (add with ONVIF and mDNS discovery, rename, remove, recording
and analysis on or off), their motion masks and zones drawn on a snapshot, and retention.

Every change goes through the same functions as `porchlight camera add|remove|set`
(hub.cameras.admin), writing config.toml, which the running camera service follows within a
second; masks and zones are stored in the camera's `motion` settings, where the motion
detector reads them. Retention is the `[retention]` section, applied from the next pass.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

from aiohttp import web

from hub.cameras.admin import (
    add_camera,
    add_onvif_camera,
    remove_camera,
    rename_camera,
    set_camera_switches,
    set_motion_areas,
)
from hub.cameras.discovery import discover_cameras
from hub.cameras.service import camera_states
from hub.config import load_config, parse_size
from hub.errors import PorchlightError
from hub.timeutil import utcnow
from hub.vault.retention import RetentionPolicy
from hub.vault.settings import set_retention
from hub.web.areas import AreaSyntaxError, format_areas, parse_areas
from hub.web.pages.cameras import SNAPSHOT_LOOKBACK
from hub.web.ui import HUB, SESSIONS, owner_only, read_form, render

log = logging.getLogger(__name__)
DISCOVERY_TIMEOUT_S = 3.0
MAX_FIELD = 512


def cameras_data(hub) -> dict:
    """Gather the cameras with their state, and the retention settings."""
    states = camera_states(hub.db)
    try:
        # config.toml as it is now: recording or analysis switched by `porchlight camera set`
        # or by Home Assistant shows at once.
        cameras = load_config(hub.data.root).cameras
    except PorchlightError:
        cameras = hub.config.cameras
    return {
        "cameras": [{"name": c.name, "type": c.type, "mode": c.mode, "analysis": c.analysis,
                     "recording": c.recording,
                     "state": states.get(c.name, {}).get("state", "not running"),
                     "detail": states.get(c.name, {}).get("detail", "")}
                    for c in cameras],
        "retention": hub.config.retention,
    }


async def _page(request: web.Request, status: int = 200, error: str | None = None,
                form: dict | None = None, found: list | None = None,
                notice: str | None = None) -> web.Response:
    hub = request.app[HUB]
    data = await asyncio.to_thread(cameras_data, hub)
    prefill = {"kind": "rtsp", "mode": "continuous"}
    prefill.update({k: v for k, v in request.query.items() if k in ("kind", "rtsp", "onvif")})
    return render(request, "settings_cameras.html", status=status, error=error, notice=notice,
                  form=form or prefill, found=found, **data)


def reload_config(hub) -> None:
    """Read config.toml again, so the UI shows what the hub now runs."""
    hub.config = load_config(hub.data.root)


@owner_only
async def cameras_page(request: web.Request) -> web.Response:
    """Show the cameras and retention settings."""
    notice = None
    if added := request.query.get("added"):
        notice = f"Added camera {added[:64]}: the hub starts it within a second."
    elif request.query.get("saved") == "retention":
        notice = "Retention saved: it applies from the next retention pass."
    elif switched := request.query.get("switched"):
        notice = await asyncio.to_thread(_switched_notice, request.app[HUB], switched)
    return await _page(request, notice=notice)


def _switched_notice(hub, name: str) -> str | None:
    """Say what a camera's switches are now, as `porchlight camera set` prints them."""
    try:
        entry = next((c for c in load_config(hub.data.root).cameras if c.name == name), None)
    except PorchlightError:
        return None
    if entry is None:
        return None
    return (f"Camera {entry.name}: recording {_on_off(entry.recording)}, motion analysis "
            f"{_on_off(entry.analysis)}. The hub follows within a second.")


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _field(form: dict[str, str], name: str) -> str:
    return form.get(name, "").strip()[:MAX_FIELD]


@owner_only
async def add(request: web.Request) -> web.Response:
    """Add a camera: an RTSP URL, an ONVIF device, or a synthetic test scene."""
    hub = request.app[HUB]
    form = await read_form(request)
    name, kind = _field(form, "name"), _field(form, "kind")
    mode = _field(form, "mode") or "continuous"
    analysis = form.get("analysis", "yes") == "yes"
    shown = {k: _field(form, k) for k in ("name", "kind", "rtsp", "sub_rtsp", "onvif", "user",
                                           "mode")}
    if mode not in ("continuous", "motion"):
        return await _page(request, 400, "Choose continuous or motion recording.", shown)

    def run() -> None:
        if kind == "onvif":
            add_onvif_camera(hub.data, name, onvif=_field(form, "onvif"),
                             user=_field(form, "user") or None, password_file=None,
                             password=form.get("password", "")[:MAX_FIELD] or None,
                             mode=mode, analysis=analysis)
        elif kind == "rtsp":
            add_camera(hub.data, name, rtsp=_field(form, "rtsp") or None,
                       sub_rtsp=_field(form, "sub_rtsp") or None, mode=mode, analysis=analysis)
        elif kind == "synthetic":
            add_camera(hub.data, name, synthetic=True, mode=mode, analysis=analysis)
        else:
            raise PorchlightError("choose what the camera is: RTSP, ONVIF or synthetic")
        reload_config(hub)

    try:
        await asyncio.to_thread(run)
    except PorchlightError as err:
        return await _page(request, 400, _plain(str(err)), shown)
    log.info("web: camera %s added (%s)", name, kind)
    raise web.HTTPSeeOther(f"/settings/cameras?added={name}")


def _plain(message: str) -> str:
    """Word a CLI error for the page: the form's fields, not the command's flags."""
    for flag, field in (("--rtsp URL or --synthetic", "an RTSP URL"), ("--onvif ", "ONVIF address "),
                        ("--no-analysis", "no analysis"), ("--mode motion", "motion recording")):
        message = message.replace(flag, field)
    return message


@owner_only
async def discover(request: web.Request) -> web.Response:
    """Look for cameras on the LAN (ONVIF WS-Discovery and mDNS) and list them to add."""
    hub = request.app[HUB]
    # The interfaces the owner allowed for the LAN (all when none are listed).
    interfaces = list(hub.config.lan.interfaces) or None
    try:
        found = await asyncio.to_thread(discover_cameras, DISCOVERY_TIMEOUT_S, interfaces)
    except OSError as err:
        return await _page(request, 502, f"Discovery failed: {err.strerror or err}")
    return await _page(request, found=found)


@owner_only
async def remove(request: web.Request) -> web.Response:
    """Remove a camera; its footage stays in the vault until retention."""
    hub = request.app[HUB]
    name = request.match_info["name"]

    def run() -> None:
        remove_camera(hub.data, name)
        reload_config(hub)

    try:
        await asyncio.to_thread(run)
    except PorchlightError as err:
        return await _page(request, 400, str(err))
    raise web.HTTPSeeOther("/settings/cameras")


@owner_only
async def rename(request: web.Request) -> web.Response:
    """Rename a camera; the people it was shared with keep it under its new name."""
    hub = request.app[HUB]
    old = request.match_info["name"]
    form = await read_form(request)
    new = _field(form, "new_name")

    def run() -> list[str]:
        rename_camera(hub.data, old, new)
        reload_config(hub)
        sharing = [p.name for p in hub.people.list() if old in p.cameras]
        for person in sharing:
            hub.people.share(person, new)
        return sharing

    try:
        sharing = await asyncio.to_thread(run)
    except PorchlightError as err:
        return await _page(request, 400, str(err))
    for person in sharing:
        # Their sessions hold the old list of cameras.
        request.app[SESSIONS].end_person(person)
    raise web.HTTPSeeOther("/settings/cameras")


@owner_only
async def switches(request: web.Request) -> web.Response:
    """Turn a camera's recording or motion analysis on or off, as `porchlight camera set` does."""
    hub = request.app[HUB]
    name = request.match_info["name"]
    form = await read_form(request)
    wanted: dict[str, bool | None] = {}
    for key, label in (("recording", "recording"), ("analysis", "motion analysis")):
        value = _field(form, key)
        if value not in ("", "on", "off"):
            return await _page(request, 400, f"{label}: choose on or off")
        wanted[key] = None if not value else value == "on"
    if wanted["recording"] is None and wanted["analysis"] is None:
        return await _page(request, 400, "say what to change: recording on or off, motion "
                           "analysis on or off")

    def run() -> None:
        # The CLI's own function and rules (analysis stays on for a motion camera); the camera
        # service follows config.toml: recording in place, analysis by restarting the camera.
        set_camera_switches(hub.data, name, **wanted)
        reload_config(hub)

    try:
        await asyncio.to_thread(run)
    except PorchlightError as err:
        return await _page(request, 400, str(err))
    log.info("web: camera %s switched (recording %s, analysis %s)", name,
             wanted["recording"], wanted["analysis"])
    raise web.HTTPSeeOther(f"/settings/cameras?switched={quote(name)}#camera-{quote(name)}")


@owner_only
async def retention(request: web.Request) -> web.Response:
    """Change how long footage is kept and how much disk it may use."""
    hub = request.app[HUB]
    form = await read_form(request)
    try:
        changes = {
            "max_age_days": _number(form, "max_age_days", "days to keep footage"),
            "min_free_percent": _number(form, "min_free_percent", "free disk to keep (%)"),
            "max_bytes": parse_size(_field(form, "max_bytes")) if _field(form, "max_bytes") else None,
        }
    except ValueError as err:
        return await _page(request, 400, str(err))

    def run():
        section = set_retention(hub.data, changes)
        reload_config(hub)
        maintenance = getattr(hub, "maintenance", None)
        if maintenance is not None:
            maintenance.policy = RetentionPolicy.from_config(section)

    try:
        await asyncio.to_thread(run)
    except PorchlightError as err:
        return await _page(request, 400, _retention_words(str(err)))
    raise web.HTTPSeeOther("/settings/cameras?saved=retention")


def _number(form: dict[str, str], name: str, label: str) -> float | None:
    text = _field(form, name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{label}: {text[:20]!r} is not a number") from None
    return int(value) if value.is_integer() else value


def _retention_words(message: str) -> str:
    return message.replace("config.toml: ", "").replace("retention.", "retention: ")


def motion_data(hub, name: str) -> dict:
    """Return a camera's masks and zones as the page's text."""
    entry = next((c for c in hub.config.cameras if c.name == name), None)
    if entry is None:
        raise web.HTTPNotFound(text="no such camera")
    motion = entry.motion or {}
    # Draw on the latest picture; a camera that has recorded nothing yet has none to show.
    recent = hub.vault.segments(name, utcnow() - SNAPSHOT_LOOKBACK, None)
    return {"camera": name, "has_picture": bool(recent),
            "areas": format_areas(motion.get("masks", []), motion.get("zones", {}))}


@owner_only
async def motion_page(request: web.Request) -> web.Response:
    """Show a camera's snapshot with its motion masks and zones, to draw or type new ones."""
    data = await asyncio.to_thread(motion_data, request.app[HUB], request.match_info["name"])
    return render(request, "motion_areas.html", error=None, **data)


@owner_only
async def save_motion(request: web.Request) -> web.Response:
    """Store the masks and zones drawn or typed on the page in the camera's motion settings."""
    hub = request.app[HUB]
    name = request.match_info["name"]
    shown = await asyncio.to_thread(motion_data, hub, name)  # 404 for an unknown camera
    form = await read_form(request)
    text = form.get("areas", "")
    try:
        masks, zones = parse_areas(text)
    except AreaSyntaxError as err:
        return render(request, "motion_areas.html", status=400, error=str(err),
                      **{**shown, "areas": text})

    def run() -> None:
        set_motion_areas(hub.data, name, masks, zones)
        reload_config(hub)

    try:
        await asyncio.to_thread(run)
    except PorchlightError as err:
        return render(request, "motion_areas.html", status=400, error=str(err),
                      **{**shown, "areas": text})
    raise web.HTTPSeeOther(f"/settings/cameras/{name}/motion?saved=1")


def setup(app: web.Application) -> None:
    """Add the camera and retention settings pages."""
    app.router.add_get("/settings/cameras", cameras_page)
    app.router.add_post("/settings/cameras", add)
    app.router.add_post("/settings/cameras/discover", discover)
    app.router.add_post("/settings/cameras/{name}/remove", remove)
    app.router.add_post("/settings/cameras/{name}/rename", rename)
    app.router.add_post("/settings/cameras/{name}/switches", switches)
    app.router.add_get("/settings/cameras/{name}/motion", motion_page)
    app.router.add_post("/settings/cameras/{name}/motion", save_motion)
    app.router.add_post("/settings/retention", retention)
