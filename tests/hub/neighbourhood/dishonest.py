"""What the tests of a hub under a dishonest gateway share: a signed registry listing one
agency, a hub placed at the agency fixtures' centre and pinned to a `MaliciousGateway`, and the
CLI calls and polling they read the hub's inbox with."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from federation.agency.tool import init_agency, load_agency
from federation.authority.tool import (
    add_agency,
    authority_jwk,
    authority_kid,
    init_authority,
    sign_registry,
)
from federation.cells import cell_for
from federation.keys import SigningKey, generate_signing_key, save_private_key
from federation.member.client import Membership
from federation.registry import verify_registry
from hub.datadir import DataDir, write_private
from hub.neighbourhood.requests import store_registry
from hub.neighbourhood.service import membership_path
from tests.federation.agency_fixtures import CENTRE, JURISDICTION


def cli(*args) -> subprocess.CompletedProcess:
    """Run `porchlight ARGS` to the end; a failure fails the test with its output."""
    return subprocess.run([sys.executable, "-m", "hub.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=True)


async def until(predicate, timeout: float = 30.0, interval: float = 0.2):
    """Await `predicate()` until it is truthy or the timeout passes; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    return await predicate()


def jti(token: str) -> str:
    """Return a JWS's `jti`, read without checking it."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]


async def inbox(hub: Path, *extra) -> list[dict]:
    """Return `requests list --json` of the hub's data dir (its rows only)."""
    done = await asyncio.to_thread(cli, "requests", "list", "--data", hub, "--json", *extra)
    return json.loads(done.stdout)["requests"]


def agency_under(tmp_path: Path, gateway_kid: str):
    """Make an authority listing one agency; return its registry for the gateway, and the
    agency's signing key."""
    init_authority(tmp_path / "authority", "Board")
    card = init_agency(tmp_path / "agency", "Police")
    add_agency(tmp_path / "authority", card, jurisdiction=JURISDICTION, since="2024-01-01",
               contact="desk@example.org")
    registry = verify_registry(
        sign_registry(tmp_path / "authority", audience=gateway_kid),
        authority_jwk=authority_jwk(tmp_path / "authority"),
        authority_kid=authority_kid(tmp_path / "authority"), audience=gateway_kid,
        now=time.time())
    return registry, load_agency(tmp_path / "agency").key


def hub_at_centre(template: Path, root: Path, registry, extra_config: str = "") -> SigningKey:
    """Copy the hub template to `root`, at the agency fixtures' centre, with a key of its own
    and the registry pinned; return its key."""
    shutil.copytree(template, root)
    key = generate_signing_key()
    save_private_key(key, root / "keys" / "hub-ed25519.pem", overwrite=True)
    config = root / "config.toml"
    config.write_text(config.read_text().replace(
        "location = { lat = 51.5007, lon = -0.1246 }",
        f"location = {{ lat = {CENTRE[0]}, lon = {CENTRE[1]} }}") + extra_config)
    store_registry(DataDir(root), registry)
    return key


def pin_to(root: Path, key: SigningKey, gateway, url: str) -> None:
    """Make the hub in `root` a member of the (malicious) gateway serving at `url`."""
    membership = Membership(url=url, gateway_kid=gateway.kid,
                            gateway_jwk=dict(gateway.key.public_jwk), gateway_name="Evil",
                            hub_kid=key.kid, hop_kid=key.kid, cell=cell_for(*CENTRE))
    write_private(membership_path(DataDir(root)), json.dumps(membership.to_dict()).encode())
