"""Neighbourhood, for owners: the hub witnesses its gateway's log (`porchlight witness enable`).

The page turns the witness on with the CLI's own function, so it refuses exactly as the CLI
does (not a member of a gateway, the LAN server off), shows the witness key and the
`[[witnesses]]` lines for the gateway's operator, and starts serving POST /add-checkpoint on
the running hub's LAN server at once, with no restart.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from hub.config import load_config
from hub.errors import PorchlightError
from hub.neighbourhood.lan import lan_url
from hub.neighbourhood.service import load_membership
from hub.neighbourhood.witness import enable_witness, load_signer
from hub.web.ui import HUB, owner_only, read_form, render

log = logging.getLogger(__name__)


def witness_state(hub) -> dict:
    """Return what the page shows: the witness key and lines once on, and whether it serves."""
    config = load_config(hub.data.root)  # the file: `witness enable` changed it since start
    signer = load_signer(hub.data) if config.lan.witness else None
    membership = load_membership(hub.data)
    service = getattr(hub, "neighbourhood", None)
    serving = bool(service is not None and service.lan is not None
                   and service.lan.witness is not None)
    return {"vkey": signer.verifier.to_string() if signer else None,
            "url": lan_url(hub.config), "serving": serving,
            "gateway": membership.gateway_name if membership else None}


async def _page(request: web.Request, status: int = 200, error: str | None = None,
                notice: str | None = None) -> web.Response:
    state = await asyncio.to_thread(witness_state, request.app[HUB])
    return render(request, "witness.html", status=status, error=error, notice=notice, **state)


@owner_only
async def witness_page(request: web.Request) -> web.Response:
    """Show whether the hub witnesses its gateway's log, and the lines for its operator."""
    return await _page(request)


@owner_only
async def enable(request: web.Request) -> web.Response:
    """Turn the witness on (as `porchlight witness enable`) and serve it at once."""
    await read_form(request)
    hub = request.app[HUB]

    def turn_on() -> bool:
        membership = load_membership(hub.data)
        enable_witness(hub, membership)
        service = getattr(hub, "neighbourhood", None)
        return service is not None and service.start_witness()

    try:
        serving = await asyncio.to_thread(turn_on)
    except PorchlightError as err:
        return await _page(request, status=400, error=str(err))
    log.info("web: the owner turned on witnessing the gateway's log (serving now: %s)", serving)
    raise web.HTTPSeeOther("/neighbourhood/witness?enabled=1")


def setup(app: web.Application) -> None:
    """Add the witness page."""
    app.router.add_get("/neighbourhood/witness", witness_page)
    app.router.add_post("/neighbourhood/witness", enable)
