"""Joining a gateway from the web UI, against real processes: a `porchlight gateway run` and the
owner's `porchlight run`. A bad, used or mistyped invite shows the gateway's exact reason and
stores nothing (the code stays good for the real join); a viewer and a forged form are refused;
after the join, the running hub follows the gateway at once, with no restart."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.request import urlopen

import pytest
from markupsafe import escape

from federation.gateway.app import DB_FILE
from tests.federation.witness_fixtures import running_witness
from tests.hub.neighbourhood.test_neighbourhood import Running, _porchlight
from tests.hub.web.conftest import (
    FORGED,
    PASSPHRASE,
    VIEWER,
    VIEWER_PASS,
    WebHub,
    add_viewer,
    csrf_of,
    run_async,
    sign_in,
)


@pytest.fixture(scope="module")
def lonely(tmp_path_factory):
    """A gateway with invites whose log a witness cosigns, and a running hub that trusts that
    witness (its key, no k) and has not joined the gateway, with a viewer."""
    root = tmp_path_factory.mktemp("join")
    gw = root / "gateway"
    _porchlight("gateway", "init", "--data", gw, "--name", "Elm Street")
    with running_witness(root / "witness", "witness.example/maple") as witness:
        witness.follow_gateway_dir(gw)
        with open(gw / "gateway.toml", "a") as settings:
            settings.write(f'\n[[witnesses]]\nurl = "{witness.url}"\nvkey = "{witness.vkey}"\n')
        gateway = Running("gateway", "run", "--data", gw, "--listen", "127.0.0.1:0")
        url = gateway.ready.split(" on ", 1)[1].split(" as ")[0]
        hub = WebHub(root / "maple", cameras=(),
                     config=f'\n[witnesses]\nkeys = ["{witness.vkey}"]\n')
        hub.start()
        run_async(add_viewer(hub, VIEWER, VIEWER_PASS))
        yield {"hub": hub, "url": url, "gateway_dir": gw, "root": root}
        hub.stop()
        gateway.stop()
    assert "Traceback" not in "".join(hub.log), "".join(hub.log)[-4000:]


def invite(world) -> str:
    return _porchlight("gateway", "invite", "--data", world["gateway_dir"]).stdout.strip()


def members(world) -> int:
    import sqlite3

    with sqlite3.connect(world["gateway_dir"] / DB_FILE) as db:
        return db.execute("select count(*) from members").fetchone()[0]


def test_bad_joins_show_the_exact_error_and_store_nothing(lonely):
    world = lonely
    hub = world["hub"]
    url = world["url"]
    used = invite(world)
    other = WebHub(world["root"] / "oak", cameras=())
    _porchlight("join", "--data", other.root, url, used)
    code = invite(world)
    kid = json.loads(urlopen(url + "/v1/info", timeout=30).read())["gateway"]["kid"]
    refused = f"could not join {url}: gateway refused: "
    bad = [
        ({"url": ""}, "Give the gateway's URL, starting with https:// (or http://)."),
        ({"url": "ftp://127.0.0.1/"}, "Give the gateway's URL, starting with https:// (or http://)."),
        ({"url": url + "/" + "x" * 2048}, "The gateway URL is longer than 2048 characters."),
        ({"code": ""}, "Give the invite code the gateway's operator sent you."),
        ({"code": "x" * 513}, "The invite code is longer than 512 characters."),
        ({"code": "not a code"}, refused + "invite code is not well formed: an invite code has "
         "20 letters and digits, like XXXX-XXXX-XXXX-XXXX-XXXX"),
        ({"code": used}, refused + "invite code is unknown, already used or expired; ask the "
         "gateway's operator for a new one"),
        ({"gateway_key": "nonsense"},
         "gateway key: a pinned key must be a 43-character kid or a 64-digit hex fingerprint"),
        ({"gateway_key": "00" * 32}, f"could not join {url}: gateway key {kid} does not match the "
         "pin you gave; check the URL and ask the operator for the gateway's fingerprint"),
        ({"registry_key": "nonsense"}, "registry authority key: a pinned key must be a 43-character "
         "kid or a 64-digit hex fingerprint"),
        ({"url": "http://127.0.0.1:9"}, "could not join http://127.0.0.1:9: cannot reach the "
         "gateway at http://127.0.0.1:9: Cannot connect to host 127.0.0.1:9 ssl:default "
         "[Connect call failed ('127.0.0.1', 9)]"),
    ]
    before = members(world)
    run_async(_bad_joins(hub, url, code, bad))
    assert not (hub.root / "federation" / "membership.json").exists()
    assert members(world) == before
    world["unspent"] = code  # refused before the gateway spent it: the real join uses it


async def _bad_joins(hub: WebHub, url: str, code: str, bad) -> None:
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/neighbourhood")
        for fields, error in bad:
            form = {"csrf": token, "url": url, "code": code, **fields}
            async with owner.post("/neighbourhood/join", data=form) as r:
                text = await r.text()
                assert r.status == 400, (fields, text[-500:])
            shown = text.split('<p class="error" role="alert" id="error">', 1)[1].split("</p>")[0]
            assert shown == str(escape(error)), fields
            assert not (hub.root / "federation" / "membership.json").exists(), fields
            assert 'id="join-form"' in text


def test_a_viewer_and_a_forged_form_cannot_join(lonely):
    run_async(_refused(lonely))


async def _refused(world) -> None:
    hub = world["hub"]
    code = invite(world)
    form = {"url": world["url"], "code": code}
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        async with owner.post("/neighbourhood/join", data=form) as r:
            assert (r.status, await r.text()) == (403, FORGED)
    async with hub.client() as viewer:
        assert (await sign_in(viewer, VIEWER, VIEWER_PASS)).status == 303
        async with viewer.get("/neighbourhood") as page:
            assert 'id="join-form"' not in await page.text()
        token = await csrf_of(viewer, "/neighbourhood")
        async with viewer.post("/neighbourhood/join", data={**form, "csrf": token}) as r:
            assert (r.status, await r.text()) == (403, "only an owner may do this")
    assert not (hub.root / "federation" / "membership.json").exists()


def test_the_owner_joins_and_the_running_hub_follows_the_gateway(lonely):
    run_async(_join(lonely))


async def _join(world) -> None:
    hub = world["hub"]
    code = world.pop("unspent", None) or invite(world)
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/neighbourhood")
        async with owner.post("/neighbourhood/join", data={
                "csrf": token, "url": world["url"], "code": code}, allow_redirects=False) as r:
            assert r.status == 303, await r.text()
            assert r.headers["Location"] == "/neighbourhood?joined=1#neighbours-h"
        assert (hub.root / "federation" / "membership.json").exists()
        deadline = time.monotonic() + 60
        while True:
            async with owner.get("/neighbourhood?joined=1") as page:
                text = await page.text()
            if '<span class="state" id="gateway-state">connected</span>' in text:
                break
            assert time.monotonic() < deadline, text[-1500:]
            await asyncio.sleep(0.2)
        assert f"Elm Street at <code>{world['url']}</code>" in text
        assert '<p class="notice" role="status" id="notice">Joined the gateway.</p>' in text
        # As `porchlight join` does: the gateway's checkpoint is cosigned by a witness the hub
        # trusts, so requests need that cosignature from now on, in config.toml and the
        # running hub alike.
        assert "\nmin = 1\n" in (hub.root / "config.toml").read_text()
        assert ('<dd id="witness-policy">agency requests need cosignatures by 1 of the '
                "witnesses this hub trusts</dd>") in text
        assert 'id="join-form"' not in text
        # A second join is refused: one gateway per hub.
        async with owner.post("/neighbourhood/join", data={
                "csrf": token, "url": world["url"], "code": invite(world)}) as r:
            assert r.status == 400
            assert "this hub is already a member of a gateway" in await r.text()


def test_an_empty_url_joins_the_gateway_found_on_the_lan(tmp_path):
    """As `porchlight join CODE` does: the running hub's LAN service found the gateway by mDNS
    (on loopback only), and an empty URL joins that one."""
    gw = tmp_path / "gateway"
    _porchlight("gateway", "init", "--data", gw, "--name", "Elm Street")
    gateway = Running("gateway", "run", "--data", gw, "--listen", "127.0.0.1:0", "--lan",
                      "--lan-interface", "127.0.0.1")
    hub = WebHub(tmp_path / "maple", cameras=(), config=(
        '[lan]\nenabled = true\nlisten = "127.0.0.1:0"\ninterfaces = ["127.0.0.1"]\n'))
    try:
        url = gateway.ready.split(" on ", 1)[1].split(" as ")[0]
        kid = json.loads(urlopen(url + "/v1/info", timeout=30).read())["gateway"]["kid"]
        hub.start()
        code = _porchlight("gateway", "invite", "--data", gw).stdout.strip()
        run_async(_join_on_the_lan(hub, url, kid, code))
    finally:
        hub.stop()
        gateway.stop()
    assert "Traceback" not in "".join(hub.log), "".join(hub.log)[-4000:]


async def _join_on_the_lan(hub: WebHub, url: str, kid: str, code: str) -> None:
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        deadline = time.monotonic() + 60
        while True:
            async with owner.get("/neighbourhood") as page:
                text = await page.text()
            if f"gateway <code>{kid[:16]}</code>" in text:
                break
            assert time.monotonic() < deadline, text[-1500:]
            await asyncio.sleep(0.2)
        assert "(empty: the one gateway found on the LAN)" in text
        token = await csrf_of(owner, "/neighbourhood")
        async with owner.post("/neighbourhood/join", data={"csrf": token, "url": "",
                                                           "code": code}) as r:
            assert r.status == 200, await r.text()
            text = await r.text()
        assert f"Elm Street at <code>{url}</code>" in text
    assert json.loads((hub.root / "federation" / "membership.json").read_text())["url"] == url
