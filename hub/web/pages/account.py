"""Your passphrase: every signed-in person changes the passphrase that seals their own key.

The household account ("owner") changes the household passphrase, as `porchlight passphrase
change` does; anyone else re-seals their own identity. The current passphrase is checked like
a sign-in (one scrypt at a time, a failure counts toward the sign-in lockout), and the person's
other sessions end: if the old passphrase leaked, whoever used it is signed out.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hub.config import load_config
from hub.errors import PassphraseError, PorchlightError
from hub.household import change_household_passphrase, check_new_passphrase
from hub.people import HOUSEHOLD
from hub.web.ui import GUARD, HUB, SESSIONS, client_address, read_form, render, session_of, unlock

MAX_PASSPHRASE = 1024


def _page(request: web.Request, status: int = 200, error: str | None = None) -> web.Response:
    return render(request, "account.html", status=status, error=error,
                  changed=request.query.get("changed") == "1",
                  household=session_of(request).name == HOUSEHOLD)


async def account(request: web.Request) -> web.Response:
    """Show the form that changes the signed-in person's passphrase."""
    return _page(request)


async def change_passphrase(request: web.Request) -> web.Response:
    """Check the current passphrase, then seal the person's key with the new one."""
    session = session_of(request)
    form = await read_form(request)
    current = form.get("current", "")[:MAX_PASSPHRASE]
    new = form.get("new", "")[:MAX_PASSPHRASE]
    if new != form.get("repeat", "")[:MAX_PASSPHRASE]:
        return _page(request, 400, "The two new passphrases differ; nothing was changed.")
    try:
        check_new_passphrase(new)  # before any scrypt is spent
    except PassphraseError as err:
        return _page(request, 400, f"{str(err).capitalize()}; nothing was changed.")
    guard, address = request.app[GUARD], client_address(request)
    hub = request.app[HUB]
    async with guard.unlocking:
        wait = guard.wait_s(session.name, address)
        if wait > 0:
            return _page(request, 429, f"Too many failed attempts: try again in "
                                       f"{int(wait + 0.999)} s.")
        try:
            identity, _, _ = await asyncio.to_thread(unlock, hub, session.name, current)
        except PassphraseError:
            guard.failed(session.name, address)
            return _page(request, 401, "Wrong current passphrase; nothing was changed.")
        guard.succeeded(session.name, address)
        try:
            if session.name == HOUSEHOLD:
                work_factor = load_config(hub.data.root).vault.passphrase_work_factor
                await asyncio.to_thread(change_household_passphrase, hub.data, identity, new,
                                        work_factor)
            else:
                await asyncio.to_thread(hub.people.change_passphrase, session.name, identity, new)
        except PorchlightError as err:
            return _page(request, 400, f"{err}")
    request.app[SESSIONS].end_person_elsewhere(session.name, session.token)
    raise web.HTTPSeeOther("/account?changed=1")


def setup(app: web.Application) -> None:
    """Add the account page."""
    app.router.add_get("/account", account)
    app.router.add_post("/account/passphrase", change_passphrase)
