"""Your passphrase, against a real `porchlight run`: the household and a viewer each change the
passphrase that seals their own key; the key stays the same, the old passphrase signs in no
more, the person's other sessions end; every refusal says why and changes nothing."""

from __future__ import annotations

import asyncio

import pytest
from markupsafe import escape

from hub.datadir import DataDir
from hub.household import unlock_household_identity
from hub.passphrase_seal import open_sealed
from tests.hub.web.conftest import (
    FORGED,
    PASSPHRASE,
    VIEWER,
    VIEWER_PASS,
    WebHub,
    add_viewer,
    csrf_of,
    sign_in,
)

NEW = "a brand new passphrase for us"


@pytest.fixture
def hub(tmp_path):
    hub = WebHub(tmp_path / "rowan", cameras=()).start()
    yield hub
    hub.stop()


async def _change(client, current: str, new: str, repeat: str | None = None, token=None):
    token = token if token is not None else await csrf_of(client, "/account")
    return await client.post("/account/passphrase", allow_redirects=False, data={
        "csrf": token, "current": current, "new": new,
        "repeat": new if repeat is None else repeat})


async def test_the_household_changes_its_passphrase_and_its_other_sessions_end(hub):
    data = DataDir(hub.root)
    key = str(unlock_household_identity(data, PASSPHRASE))
    async with hub.client() as elsewhere, hub.client() as here:
        assert (await sign_in(elsewhere, "owner", PASSPHRASE)).status == 303
        assert (await sign_in(here, "owner", PASSPHRASE)).status == 303
        async with here.get("/") as page:
            assert 'href="/account"' in await page.text()  # reached from every page
        reply = await _change(here, PASSPHRASE, NEW)
        assert reply.status == 303 and reply.headers["Location"] == "/account?changed=1"
        async with here.get("/account?changed=1") as page:
            assert "Your passphrase is changed." in await page.text()
        async with elsewhere.get("/", allow_redirects=False) as page:
            assert page.status == 401  # signed out: the old passphrase may have leaked
    assert str(unlock_household_identity(data, NEW)) == key  # the same key: footage readable
    async with hub.client() as again:
        assert (await sign_in(again, "owner", PASSPHRASE)).status == 401
    await asyncio.sleep(1.1)  # the sign-in lockout after that failure
    async with hub.client() as again:
        assert (await sign_in(again, "owner", NEW)).status == 303


async def test_a_viewer_changes_their_own_passphrase(hub):
    await add_viewer(hub, VIEWER, VIEWER_PASS)
    path = hub.root / "keys" / "people" / f"{VIEWER}.age"
    key = open_sealed(path.read_bytes(), VIEWER_PASS)
    household = (hub.root / "keys" / "household.age").read_bytes()
    async with hub.client() as sam:
        assert (await sign_in(sam, VIEWER, VIEWER_PASS)).status == 303
        async with sam.get("/account") as page:
            assert page.status == 200 and "shared with you" in await page.text()
        assert (await _change(sam, VIEWER_PASS, NEW)).status == 303
    assert open_sealed(path.read_bytes(), NEW) == key
    assert (hub.root / "keys" / "household.age").read_bytes() == household
    async with hub.client() as sam:
        assert (await sign_in(sam, VIEWER, VIEWER_PASS)).status == 401
    await asyncio.sleep(1.1)  # the sign-in lockout after that failure
    async with hub.client() as sam:
        assert (await sign_in(sam, VIEWER, NEW)).status == 303


async def test_refusals_say_why_and_change_nothing(hub):
    sealed = (hub.root / "keys" / "household.age").read_bytes()
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/account")
        for args, status, message in [
            ((PASSPHRASE, NEW, NEW + "x"), 400,
             "The two new passphrases differ; nothing was changed."),
            ((PASSPHRASE, "too short"), 400,
             "The passphrase must have at least 12 characters (it has 9); nothing was changed."),
            (("not the passphrase", NEW), 401, "Wrong current passphrase; nothing was changed."),
            # Straight after a wrong one, even the right one waits, as at the sign-in.
            ((PASSPHRASE, NEW), 429, "Too many failed attempts: try again in 1 s."),
        ]:
            reply = await _change(owner, *args, token=token)
            assert reply.status == status, message
            assert str(escape(message)) in await reply.text()
        reply = await _change(owner, PASSPHRASE, NEW, token="forged")
        assert reply.status == 403 and await reply.text() == FORGED
    assert (hub.root / "keys" / "household.age").read_bytes() == sealed
