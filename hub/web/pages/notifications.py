"""Notifications: which triggers reach each person's targets. An owner sets everyone's, anyone
else their own; the targets themselves are [[notifiers]] in config.toml (docs/integrations.md).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hub.errors import PorchlightError
from hub.notify import prefs
from hub.people import HOUSEHOLD, OWNER
from hub.web.ui import HUB, MAX_FORM_BYTES, render, session_of

LABELS = {
    "request": "An agency asks for footage (pending request)",
    "alert": "A neighbourhood alert or a verified announcement",
    "motion": "Motion on a camera (at most once per camera per cooldown)",
    "camera": "A camera goes down or comes back",
    "disk": "The disk is nearly full",
    "fork": "Fork alarm: the gateway showed two different logs",
}


def _people(request: web.Request) -> list[tuple[str, str]]:
    """Return (name, role) of each person whose switches this session may see."""
    session = session_of(request)
    hub = request.app[HUB]
    if not session.is_owner:
        return [(session.name, session.role)]
    return [(HOUSEHOLD, OWNER)] + [(p.name, p.role) for p in hub.people.list()]


def _page(request: web.Request, status: int = 200, error: str | None = None,
          saved: str | None = None) -> web.Response:
    hub = request.app[HUB]
    rows = []
    for name, role in _people(request):
        targets = [f"{e.name} ({e.type})" for e in hub.config.notifiers if e.person == name]
        rows.append({"name": name, "role": role, "targets": targets,
                     "prefs": prefs.prefs_of(hub.db, name, role)})
    return render(request, "notifications.html", status=status, error=error, saved=saved,
                  rows=rows, labels=LABELS)


async def notifications_page(request: web.Request) -> web.Response:
    """Show the switches of the people this session may see."""
    return _page(request, saved=request.query.get("saved"))


async def save(request: web.Request) -> web.Response:
    """Switch on exactly the checked triggers for one person."""
    session = session_of(request)
    person = request.match_info["person"]
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_FORM_BYTES, request.content_length)
    if not session.is_owner and person != session.name:
        raise web.HTTPForbidden(text="you may change only your own notifications")
    hub = request.app[HUB]
    role = prefs.role_of(hub, person)
    if role is None:
        raise web.HTTPNotFound(text="no such person")
    form = await request.post()
    on = {v for v in form.getall("on", []) if isinstance(v, str)}
    try:
        await asyncio.to_thread(prefs.set_prefs, hub.db, person, role, on)
    except PorchlightError as err:
        return _page(request, status=400, error=str(err))
    raise web.HTTPSeeOther(f"/settings/notifications?saved={person}")


def setup(app: web.Application) -> None:
    """Add the notifications page's routes."""
    app.router.add_get("/settings/notifications", notifications_page)
    app.router.add_post("/settings/notifications/{person}", save)
