"""Neighbourhood: the owner turns on witnessing the gateway's log from the web UI of a real
`porchlight run` (`porchlight witness enable`): the CLI's exact refusals (not a member, the LAN
server off) with nothing stored; then the witness key and the `[[witnesses]]` lines, and the
running hub's LAN server answers add-checkpoint at once, with no restart. A viewer and a forged
form change nothing."""

from __future__ import annotations

import html
import json
import re
import socket
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from federation.cells import cell_for
from federation.keys import generate_signing_key
from federation.member.client import Membership
from hub.cli.main import main as cli_main
from hub.config import parse_config
from hub.datadir import DataDir, write_private
from hub.household import hub_key
from hub.neighbourhood.service import membership_path
from tests.hub.web.conftest import (
    FORGED,
    PASSPHRASE,
    WebHub,
    add_viewer,
    csrf_of,
    run_async,
    sign_in,
)

NOT_MEMBER = ("this hub is not a member of a gateway: join one first (`porchlight join`), then "
              "it can witness that gateway's log")
LAN_OFF = ("a hub witnesses on its LAN server: set enabled = true under [lan] in config.toml "
           "first (docs/witness.md)")


def _join_on_paper(root) -> None:
    """Write a membership of a gateway that is not there (the witness needs only its key)."""
    gateway, hub = generate_signing_key(), hub_key(DataDir(root))
    membership = Membership(url="http://127.0.0.1:9", gateway_kid=gateway.kid,
                            gateway_jwk=dict(gateway.public_jwk), gateway_name="Elm Street",
                            hub_kid=hub.kid, hop_kid=hub.kid, cell=cell_for(51.5, -0.12))
    write_private(membership_path(DataDir(root)), json.dumps(membership.to_dict()).encode())


def _error(page: str) -> str:
    """Return the error line the page shows."""
    return html.unescape(re.search(r'<p class="error" role="alert" id="error">(.*?)</p>',
                                   page).group(1))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lan_member(root) -> tuple[WebHub, int]:
    """A hub (not started) with its LAN server on a free port, a member of a gateway on paper;
    return it and the LAN server's port."""
    port = _free_port()
    hub = WebHub(root, config=f'[lan]\nenabled = true\nlisten = "127.0.0.1:{port}"'
                 '\ninterfaces = ["127.0.0.1"]\n')
    _join_on_paper(hub.root)
    return hub, port


def _add_checkpoint(port: int) -> tuple[int, str]:
    request = Request(f"http://127.0.0.1:{port}/add-checkpoint", data=b"old 0\n\nnot a note\n",
                      method="POST")
    try:
        with urlopen(request, timeout=30) as reply:
            return reply.status, reply.read().decode()
    except HTTPError as err:
        return err.code, err.read().decode()


def test_the_refusals_are_the_clis_and_store_nothing(tmp_path):
    hub = WebHub(tmp_path / "maple").start()
    key = hub.root / "keys" / "witness-ed25519.pem"
    config = (hub.root / "config.toml").read_text()
    try:
        run_async(_refusals(hub))
        assert not key.exists() and (hub.root / "config.toml").read_text() == config
    finally:
        hub.stop()


async def _refusals(hub: WebHub) -> None:
    await add_viewer(hub, "robin", "robin's own passphrase", "porch")
    async with hub.client() as viewer:
        assert (await sign_in(viewer, "robin", "robin's own passphrase")).status == 303
        token = await csrf_of(viewer, "/")
        for method in (viewer.get, viewer.post):
            async with method("/neighbourhood/witness", data={"csrf": token}) as r:
                assert (r.status, await r.text()) == (403, "only an owner may do this")
        async with viewer.get("/neighbourhood") as r:
            assert 'id="witness-link"' not in await r.text()
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        async with owner.post("/neighbourhood/witness", data={}) as r:
            assert (r.status, await r.text()) == (403, FORGED)
        token = await csrf_of(owner, "/neighbourhood/witness")
        async with owner.post("/neighbourhood/witness", data={"csrf": token}) as r:
            assert r.status == 400
            assert _error(await r.text()) == NOT_MEMBER
        _join_on_paper(hub.root)  # a member now, but the LAN server is off
        async with owner.post("/neighbourhood/witness", data={"csrf": token}) as r:
            assert r.status == 400
            assert _error(await r.text()) == LAN_OFF


def test_the_owner_turns_the_witness_on_and_the_running_hub_serves_it_at_once(tmp_path):
    hub, port = lan_member(tmp_path / "maple")
    hub.start()
    try:
        assert _add_checkpoint(port) == (404, "this hub does not witness a log\n")
        text = run_async(_enable(hub))
        vkey = html.unescape(text.split('id="witness-key">', 1)[1].split("</code>", 1)[0])
        assert vkey.startswith("porchlight-hub-witness/")
        lines = f'[[witnesses]]\nurl = "http://127.0.0.1:{port}"\nvkey = "{vkey}"'
        shown = re.search(r'<pre class="lines" id="witness-lines">(.*?)</pre>', text, re.S).group(1)
        assert html.unescape(shown) == lines
        assert ("This hub witnesses the log of gateway Elm Street: its LAN server answers the "
                "gateway's checkpoints now.") in text
        assert parse_config((hub.root / "config.toml").read_text()).lan.witness is True
        # The running hub's LAN server now applies the witness rules (a malformed note is
        # refused as such, no longer "does not witness a log"), with no restart.
        status, body = _add_checkpoint(port)
        assert status == 400 and "does not witness" not in body, (status, body)
    finally:
        hub.stop()
    assert not [line for line in hub.log if "Traceback" in line]


async def _enable(hub: WebHub) -> str:
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        async with owner.get("/neighbourhood") as r:
            assert 'href="/neighbourhood/witness" id="witness-link"' in await r.text()
        token = await csrf_of(owner, "/neighbourhood/witness")
        async with owner.post("/neighbourhood/witness", data={"csrf": token},
                              allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (303, "/neighbourhood/witness?enabled=1")
        async with owner.get("/neighbourhood/witness") as r:
            assert r.status == 200
            first = await r.text()
        # Again: the same key, nothing new.
        async with owner.post("/neighbourhood/witness", data={"csrf": token}) as r:
            assert r.status == 200 and 'id="witness-form"' not in await r.text()
        return first


def test_a_witness_turned_on_by_the_cli_while_the_hub_runs_starts_from_the_page(tmp_path):
    hub, port = lan_member(tmp_path / "maple")
    hub.start()
    try:
        assert cli_main(["witness", "enable", "--data", str(hub.root)]) == 0
        text = run_async(_page_text(hub))
        assert ("Witnessing is on in config.toml, but this hub does not serve it yet: start it "
                "below, or restart <code>porchlight run</code>.") in text
        assert 'id="witness-form"' not in text and 'id="witness-key">porchlight-hub-witness/' in text
        assert _add_checkpoint(port) == (404, "this hub does not witness a log\n")
        # The page's button starts it in the running hub (the same form as turning it on).
        text = run_async(_page_text(hub, start=True))
        assert "its LAN server answers the gateway's checkpoints now." in text
        assert 'id="witness-start"' not in text
        status, body = _add_checkpoint(port)
        assert status == 400 and "does not witness" not in body, (status, body)
    finally:
        hub.stop()


async def _page_text(hub: WebHub, start: bool = False) -> str:
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        if start:
            token = await csrf_of(owner, "/neighbourhood/witness")
            async with owner.post("/neighbourhood/witness", data={"csrf": token}) as r:
                assert r.status == 200
        async with owner.get("/neighbourhood/witness") as r:
            assert r.status == 200
            return await r.text()
