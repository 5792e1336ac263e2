"""Settings, for owners: people and what they may see, the vault's check and prune (run as
jobs, with progress), and the certificate fingerprint.

Adding a person makes them an age identity of their own, sealed with the passphrase the owner
types in with them (age scrypt, about a second of CPU). Sharing a camera seals its new segments
to that person too; unsharing or removing stops that from then on, and the page says plainly
that footage already sealed to them stays readable with their key.
"""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from hub.errors import PorchlightError
from hub.jobs import JobBusy
from hub.vault.retention import RetentionPolicy
from hub.vault.upkeep import VaultUpkeep, upkeep_json
from hub.web.ui import HUB, JOBS, SESSIONS, owner_only, read_form, render, session_of

UPKEEP = web.AppKey("vault_upkeep", VaultUpkeep)


def _settings(request: web.Request, status: int = 200, error: str | None = None,
              notice: str | None = None) -> web.Response:
    hub = request.app[HUB]
    return render(request, "settings.html", status=status, error=error, notice=notice,
                  people=hub.people.list(), cameras=[c.name for c in hub.config.cameras],
                  fingerprint=getattr(hub, "web_fingerprint", None),
                  retention=hub.config.retention, job=request.app[UPKEEP].current)


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


@owner_only
async def start_vault_job(request: web.Request) -> web.Response:
    """Start `footage check` or `footage prune` as a job; the page shows its progress."""
    kind = request.match_info["kind"]
    form = await read_form(request)
    # Decoding needs a key: the session's own, used by the job and dropped when it ends.
    identity = session_of(request).identity if form.get("decode") == "yes" else None
    try:
        request.app[UPKEEP].start(kind, dry_run=form.get("dry_run") == "yes", identity=identity)
    except JobBusy as err:
        return _settings(request, status=409, error=str(err))
    raise web.HTTPSeeOther("/settings#vault-h")


@owner_only
async def vault_job(request: web.Request) -> web.Response:
    """Answer the current or last vault job's state, for the page's poll."""
    return web.json_response(upkeep_json(request.app[UPKEEP].current),
                             headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    """Add the settings pages."""
    async def start_upkeep(app: web.Application) -> None:
        hub = app[HUB]
        maintenance = getattr(hub, "maintenance", None)

        def policy() -> RetentionPolicy:
            if maintenance is not None:
                return maintenance.policy  # follows a retention change made on the page
            return RetentionPolicy.from_config(hub.config.retention)

        lock = maintenance.lock if maintenance is not None else threading.Lock()
        app[UPKEEP] = VaultUpkeep(app[JOBS], hub.vault, policy, hub.clock, lock)

    app.on_startup.append(start_upkeep)
    app.router.add_get("/settings", settings)
    app.router.add_post("/settings/vault/{kind:check|prune}", start_vault_job)
    app.router.add_get("/settings/vault/job", vault_job)
    app.router.add_post("/settings/people", add_person)
    app.router.add_post("/settings/people/{name}/remove", remove_person)
    app.router.add_post("/settings/people/{name}/share", share)
