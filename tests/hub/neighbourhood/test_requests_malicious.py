"""A hub pinned to a dishonest gateway: every trick is caught, recorded with its reason, and
nothing is shown to the owner; an honest request beside them waits for the owner as usual."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

from tests.federation.agency_fixtures import CENTRE, sign_request
from tests.federation.malicious_gateway import MaliciousGateway, altered
from tests.hub.neighbourhood.dishonest import (
    agency_under,
    cli,
    hub_at_centre,
    inbox,
    jti,
    pin_to,
    until,
)


async def test_a_dishonest_gateway_shows_the_owner_nothing(tmp_path, hub_template, clip25):
    evil = MaliciousGateway(tmp_path / "evil")
    registry, agency = agency_under(tmp_path, evil.kid)

    def sign(**changes) -> str:
        return sign_request(agency, evil.kid, time.time(), **changes)

    # A hub on the Dam with footage in the requests' window (2 h ending 1 h ago).
    root = tmp_path / "hub"
    key = hub_at_centre(hub_template, root, registry)
    start = datetime.now().astimezone() - timedelta(hours=2, minutes=30)
    await asyncio.to_thread(cli, "footage", "import", "--data", root, "--camera", "porch",
                            "--start", start.isoformat(), clip25)

    async with evil.serve() as url:
        pin_to(root, key, evil, url)
        hub = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "run", "--http", "--data", str(root), "--listen",
            "127.0.0.1:0", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert b"listening on" in await hub.stdout.readline()
            honest = sign()
            evil.log_and_push(honest)
            pending = await until(lambda: inbox(root))
            assert [r["status"] for r in pending] == ["pending"]

            expected = {}
            changed = altered(sign(), reason="Looking for everybody, all week")
            evil.log_and_push(changed)
            expected[jti(changed)] = "changed after the agency signed it"
            evil.push(honest, evil.log.tlog_proof(0))  # a replay: ignored, stays pending once
            unlogged = sign()
            other = evil.log.append(sign().encode())
            evil.push(unlogged, evil.log.tlog_proof(other))
            expected[jti(unlogged)] = "not in the"
            withheld = sign()
            evil.push(withheld, None)
            expected[jti(withheld)] = "proof"
            evil.log = evil.new_log("fork")
            for _ in range(5):
                evil.log.append(sign().encode())
            forked = sign()
            evil.log_and_push(forked)
            expected[jti(forked)] = "consistent"
            wide = sign(area={"lat": CENTRE[0], "lon": CENTRE[1], "radius_m": 700.0})
            evil.log_and_push(wide)
            expected[jti(wide)] = "radius"

            dropped = await until(
                lambda: _dropped(root, len(expected)), timeout=30)
            reasons = {r["id"]: r["detail"] for r in dropped}
            assert set(reasons) == set(expected)
            for request_id, fragment in expected.items():
                assert fragment.lower() in reasons[request_id].lower(), reasons[request_id]
            shown = await inbox(root)
            assert [(r["id"], r["status"]) for r in shown] == [(jti(honest), "pending")]
        finally:
            hub.send_signal(signal.SIGTERM)
            _, err = await hub.communicate()
    assert b"Traceback" not in err


async def _dropped(root, count: int):
    rows = [r for r in await inbox(root, "--all") if r["status"] == "dropped"]
    return rows if len(rows) >= count else None

