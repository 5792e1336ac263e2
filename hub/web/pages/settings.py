"""Settings, for owners: people and what they may see, and the certificate fingerprint.

Adding a person makes them an age identity of their own, sealed with the passphrase the owner
types in with them (age scrypt, about a second of CPU). Sharing a camera seals its new segments
to that person too; unsharing or removing stops that from then on, and the page says plainly
that footage already sealed to them stays readable with their key.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hub.errors import PorchlightError
from hub.web.ui import HUB, SESSIONS, owner_only, read_form, render


def _settings(request: web.Request, status: int = 200, error: str | None = None,
              notice: str | None = None) -> web.Response:
    hub = request.app[HUB]
    return render(request, "settings.html", status=status, error=error, notice=notice,
                  people=hub.people.list(), cameras=[c.name for c in hub.config.cameras],
                  fingerprint=getattr(hub, "web_fingerprint", None),
                  retention=hub.config.retention)


@owner_only
async def settings(request: web.Request) -> web.Response:
    """Show the settings page."""
    return _settings(request)


@owner_only
async def add_person(request: web.Request) -> web.Response:
    """Add a person with a role and their own passphrase-sealed key."""
    form = await read_form(request)
    hub = request.app[HUB]
    name = form.get("name", "").strip().lower()
    try:
        await asyncio.to_thread(hub.people.add, name, form.get("role", ""),
                                form.get("passphrase", "")[:1024])
    except PorchlightError as err:
        return _settings(request, status=400, error=str(err))
    raise web.HTTPSeeOther(f"/settings?added={name}")


@owner_only
async def remove_person(request: web.Request) -> web.Response:
    """Remove a person: their sessions end and nothing new is sealed to them."""
    name = request.match_info["name"]
    hub = request.app[HUB]
    try:
        await asyncio.to_thread(hub.people.remove, name)
    except PorchlightError as err:
        return _settings(request, status=400, error=str(err))
    request.app[SESSIONS].end_person(name)
    raise web.HTTPSeeOther("/settings")


@owner_only
async def share(request: web.Request) -> web.Response:
    """Share a camera with a person, or stop sharing it, from now on."""
    name = request.match_info["name"]
    form = await read_form(request)
    camera = form.get("camera", "")
    hub = request.app[HUB]
    if camera not in {c.name for c in hub.config.cameras}:
        return _settings(request, status=400, error=f"no camera named {camera!r}")
    try:
        if form.get("shared") == "yes":
            await asyncio.to_thread(hub.people.share, name, camera)
        else:
            await asyncio.to_thread(hub.people.unshare, name, camera)
    except PorchlightError as err:
        return _settings(request, status=400, error=str(err))
    # Their open sessions hold the old list of cameras: end them, so the new one applies.
    request.app[SESSIONS].end_person(name)
    raise web.HTTPSeeOther("/settings")


def setup(app: web.Application) -> None:
    """Add the settings pages."""
    app.router.add_get("/settings", settings)
    app.router.add_post("/settings/people", add_person)
    app.router.add_post("/settings/people/{name}/remove", remove_person)
    app.router.add_post("/settings/people/{name}/share", share)
