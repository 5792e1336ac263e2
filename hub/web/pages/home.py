"""Home: the cameras with their state and latest picture, disk and retention, recent events,
pending agency requests (prominent, for owners) and the latest neighbourhood alerts. The page
updates itself when the hub reports an event, an alert or a request (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta

from aiohttp import web

from hub.cameras.events import list_events
from hub.neighbourhood.alerts import list_alerts
from hub.neighbourhood.requests import PENDING
from hub.timeutil import utcnow
from hub.web.pages.fork import fork_data
from hub.web.ui import HUB, render, session_of, visible_cameras

RECENT_EVENTS = 10
RECENT_ALERTS = 5


def home_data(hub, session, cameras: list) -> dict:
    """Gather what the home page shows for this session (blocking: SQLite and the disk)."""
    states = {r["camera"]: r for r in hub.db["camera_state"].rows}
    names = [c.name for c in cameras]
    now = utcnow()
    events = [e for e in list_events(hub.vault, None, now - timedelta(days=7), None)
              if session.sees(e["camera"])][-RECENT_EVENTS:][::-1]
    pending = 0
    if session.is_owner:
        pending = hub.db.execute("select count(*) from requests where status = ?",
                                 [PENDING]).fetchone()[0]
    vault_bytes = hub.db.execute("select coalesce(sum(size), 0) from segments").fetchone()[0]
    disk = shutil.disk_usage(hub.data.root)
    return {
        "cameras": [{"name": n, "state": states.get(n, {}).get("state", "not running"),
                     "since": states.get(n, {}).get("since", "")} for n in names],
        "events": events,
        "pending": pending,
        "alerts": list_alerts(hub.db, now)[:RECENT_ALERTS],
        "vault_bytes": vault_bytes,
        "disk": disk,
        "retention": hub.config.retention,
        # Everyone of the household sees the fork alarm; only an owner may resume.
        "fork": fork_data(hub),
    }


async def home(request: web.Request) -> web.Response:
    """Show the home page."""
    session = session_of(request)
    hub = request.app[HUB]
    data = await asyncio.to_thread(home_data, hub, session, visible_cameras(request))
    return render(request, "home.html", **data)


def setup(app: web.Application) -> None:
    """Add the home page."""
    app.router.add_get("/", home)
