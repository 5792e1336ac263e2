"""A hub pinned to a dishonest gateway: every trick is caught, recorded with its reason, and
nothing is shown to the owner; an honest request beside them waits for the owner as usual."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

from federation.agency.tool import init_agency, load_agency
from federation.authority.tool import (
    add_agency,
    authority_jwk,
    authority_kid,
    init_authority,
    sign_registry,
)
from federation.cells import cell_for
from federation.keys import generate_signing_key, save_private_key
from federation.member.client import Membership
from federation.registry import verify_registry
from hub.datadir import DataDir, write_private
from hub.neighbourhood.requests import store_registry
from hub.neighbourhood.service import membership_path
from tests.federation.agency_fixtures import CENTRE, JURISDICTION, sign_request
from tests.federation.malicious_gateway import MaliciousGateway, altered


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=True)


async def _inbox(hub, *extra) -> list[dict]:
    done = await asyncio.to_thread(_cli, "requests", "list", "--data", hub, "--json", *extra)
    return json.loads(done.stdout)["requests"]


async def _until(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    return await predicate()


async def test_a_dishonest_gateway_shows_the_owner_nothing(tmp_path, hub_template, clip25):
    evil = MaliciousGateway(tmp_path / "evil")
    init_authority(tmp_path / "authority", "Board")
    card = init_agency(tmp_path / "agency", "Police")
    add_agency(tmp_path / "authority", card, jurisdiction=JURISDICTION, since="2024-01-01",
               contact="desk@example.org")
    registry = verify_registry(
        sign_registry(tmp_path / "authority", audience=evil.kid),
        authority_jwk=authority_jwk(tmp_path / "authority"),
        authority_kid=authority_kid(tmp_path / "authority"), audience=evil.kid, now=time.time())
    agency = load_agency(tmp_path / "agency").key

    def sign(**changes) -> str:
        return sign_request(agency, evil.kid, time.time(), **changes)

    # A hub on the Dam with footage in the requests' window (2 h ending 1 h ago).
    root = tmp_path / "hub"
    shutil.copytree(hub_template, root)
    key = generate_signing_key()
    save_private_key(key, root / "keys" / "hub-ed25519.pem", overwrite=True)
    config = root / "config.toml"
    config.write_text(config.read_text().replace(
        "location = { lat = 51.5007, lon = -0.1246 }",
        f"location = {{ lat = {CENTRE[0]}, lon = {CENTRE[1]} }}"))
    start = datetime.now().astimezone() - timedelta(hours=2, minutes=30)
    await asyncio.to_thread(_cli, "footage", "import", "--data", root, "--camera", "porch",
                            "--start", start.isoformat(), clip25)
    store_registry(DataDir(root), registry)

    async with evil.serve() as url:
        membership = Membership(url=url, gateway_kid=evil.kid,
                                gateway_jwk=dict(evil.key.public_jwk), gateway_name="Evil",
                                hub_kid=key.kid, hop_kid=key.kid, cell=cell_for(*CENTRE))
        write_private(membership_path(DataDir(root)), json.dumps(membership.to_dict()).encode())
        hub = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "run", "--http", "--data", str(root), "--listen",
            "127.0.0.1:0", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert b"listening on" in await hub.stdout.readline()
            honest = sign()
            evil.log_and_push(honest)
            pending = await _until(lambda: _inbox(root))
            assert [r["status"] for r in pending] == ["pending"]

            expected = {}
            changed = altered(sign(), reason="Looking for everybody, all week")
            evil.log_and_push(changed)
            expected[_jti(changed)] = "changed after the agency signed it"
            evil.push(honest, evil.log.tlog_proof(0))  # a replay: ignored, stays pending once
            unlogged = sign()
            other = evil.log.append(sign().encode())
            evil.push(unlogged, evil.log.tlog_proof(other))
            expected[_jti(unlogged)] = "not in the"
            withheld = sign()
            evil.push(withheld, None)
            expected[_jti(withheld)] = "proof"
            evil.log = evil.new_log("fork")
            for _ in range(5):
                evil.log.append(sign().encode())
            forked = sign()
            evil.log_and_push(forked)
            expected[_jti(forked)] = "consistent"
            wide = sign(area={"lat": CENTRE[0], "lon": CENTRE[1], "radius_m": 700.0})
            evil.log_and_push(wide)
            expected[_jti(wide)] = "radius"

            dropped = await _until(
                lambda: _dropped(root, len(expected)), timeout=30)
            reasons = {r["id"]: r["detail"] for r in dropped}
            assert set(reasons) == set(expected)
            for request_id, fragment in expected.items():
                assert fragment.lower() in reasons[request_id].lower(), reasons[request_id]
            shown = await _inbox(root)
            assert [(r["id"], r["status"]) for r in shown] == [(_jti(honest), "pending")]
        finally:
            hub.send_signal(signal.SIGTERM)
            _, err = await hub.communicate()
    assert b"Traceback" not in err


async def _dropped(root, count: int):
    rows = [r for r in await _inbox(root, "--all") if r["status"] == "dropped"]
    return rows if len(rows) >= count else None


def _jti(token: str) -> str:
    import base64

    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]
