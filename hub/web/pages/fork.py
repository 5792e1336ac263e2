"""The fork alarm in the web UI: what `porchlight requests list` and `requests resume` show and do.

When LAN gossip catches the gateway showing this hub and a neighbour two logs that cannot both
be true (hub.neighbourhood.gossip), Home and the Requests page show the alarm to everyone of the
household (it concerns them all): the gateway, the neighbour, when, both signed checkpoints and
how many of the gateway's requests were withheld since. Only an owner may resume, which runs
exactly what `porchlight requests resume` runs; the proof stays in the data dir.
"""

from __future__ import annotations

import asyncio
import base64

from aiohttp import web

from federation.errors import FederationError
from federation.tlog.checkpoint import parse_checkpoint
from federation.tlog.note import parse_note
from hub.neighbourhood.gossip import clear_fork_alarm, fork_alarm, fork_evidence
from hub.neighbourhood.requests import DROPPED
from hub.web.ui import HUB, owner_only, render

WITHHELD = "withheld:%"  # the detail `_accept_request` records on a request held back by the alarm


def fork_data(hub) -> dict | None:
    """Gather the standing fork alarm for a page, or None (blocking: SQLite and the disk)."""
    alarm = fork_alarm(hub.db)
    if alarm is None:
        return None
    evidence = fork_evidence(hub, alarm)
    withheld = [dict(id=r[0], received=r[1]) for r in hub.db.execute(
        "select id, received from requests where status = ? and detail like ? and received >= ?"
        " order by received", [DROPPED, WITHHELD, alarm["found"]]).fetchall()]
    return {**alarm, "checkpoints": [_checkpoint(side, evidence[side])
                                     for side in ("ours", "theirs")],
            "withheld": withheld}


def _checkpoint(side: str, signed: str | None) -> dict:
    """Describe one signed checkpoint of the proof: origin, size, root hash and the whole note."""
    seen = "this hub" if side == "ours" else "the LAN neighbour"
    shown = {"side": side, "seen": seen, "note": signed, "origin": None, "size": None,
             "root": None}
    if signed is not None:
        try:
            checkpoint = parse_checkpoint(parse_note(signed)[0])
        except FederationError:
            return shown  # the note is still shown whole; `porchlight log verify` says why
        shown.update(origin=checkpoint.origin, size=checkpoint.size,
                     root=base64.b64encode(checkpoint.root_hash).decode())
    return shown


@owner_only
async def resume(request: web.Request) -> web.Response:
    """Lift the fork alarm as `porchlight requests resume` does; the proof stays on disk."""
    alarm = await asyncio.to_thread(clear_fork_alarm, request.app[HUB])
    return render(request, "fork_resumed.html", alarm=alarm)


def setup(app: web.Application) -> None:
    """Add the resume action (the alarm itself is part of Home and the Requests page)."""
    app.router.add_post("/requests/resume", resume)
