"""The hub's LAN server under idle and slowloris clients (issue 9 item 3)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from federation.keys import generate_signing_key
from federation.replay import MemoryReplayStore
from federation.serving import ServerLimits
from hub.neighbourhood.lan import LAN_LIMITS, LanService
from hub.service import Hub
from tests.slow_clients import addresses, open_flood

IDLE_TIMEOUT_S = 3.0
PER_ADDRESS = 4


async def test_lan_server_serves_through_idle_and_slowloris_clients(hub_dir):
    # The LAN server's own limits, shortened so that the test waits seconds, not 20.
    assert (LAN_LIMITS.idle_timeout_s, LAN_LIMITS.max_per_address) == (20.0, 16)
    hub = Hub(hub_dir)
    key = generate_signing_key()
    lan = LanService(hub, key, "127.0.0.1", 0, ["127.0.0.1"], MemoryReplayStore(),
                     limits=ServerLimits(idle_timeout_s=IDLE_TIMEOUT_S,
                                         max_per_address=PER_ADDRESS))
    timings = []
    try:
        async with lan:
            plan = {"idle": {a: 8 for a in addresses(2, 2)},
                    "slowloris": {a: 8 for a in addresses(4, 2)}}
            flood = open_flood("127.0.0.1", lan.port, plan, drip_s=0.5)
            try:
                await asyncio.wait_for(flood.opened.wait(), 30)
                async with aiohttp.ClientSession() as session:
                    for _ in range(3):
                        started = time.monotonic()
                        async with session.get(f"http://127.0.0.1:{lan.port}/lan/v1/key",
                                               timeout=aiohttp.ClientTimeout(total=5)) as reply:
                            assert (await reply.json())["kid"] == key.kid
                        timings.append(time.monotonic() - started)
                await flood.wait_closed(timeout=IDLE_TIMEOUT_S + 30)
            finally:
                await flood.stop()
    finally:
        hub.close()
    print(f"\n/lan/v1/key under the flood (s): {timings}")
    held = [c for c in flood.connections if not c.refused]
    refused = [c for c in flood.connections if c.refused]
    for address in addresses(2, 4):
        assert len([c for c in held if c.address == address]) == PER_ADDRESS, address
    assert len(refused) == 32 - 4 * PER_ADDRESS
    assert refused[0].refusal()[1]["reason"] == "too_many_connections"
    for conn in held:
        assert conn.closed is not None and conn.answer == b"", conn
        assert conn.lifetime >= IDLE_TIMEOUT_S * 0.95, conn
    assert min(c.drips for c in held if c.kind == "slowloris") >= 3
