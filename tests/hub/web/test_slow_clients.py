"""The hub's web server under idle and slowloris clients: a real `porchlight run` (issue 9 item 3)."""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import time

import aiohttp

from tests.slow_clients import addresses, open_flood

IDLE_TIMEOUT_S = 4.0
PER_ADDRESS = 8
CALL_TIMEOUT_S = 5.0


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def _start(root) -> tuple[subprocess.Popen, int]:
    config = root / "config.toml"
    text = config.read_text()
    assert "[web]\n" in text
    config.write_text(text.replace(
        "[web]\n",
        f"[web]\nidle_timeout_s = {IDLE_TIMEOUT_S}\n"
        f"max_connections_per_address = {PER_ADDRESS}\n"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "run", "--http", "--data", str(root),
         "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_limit_descriptors)
    line = proc.stdout.readline()
    assert "listening on http://127.0.0.1:" in line, proc.stderr.read() if proc.poll() else line
    return proc, int(line.strip().rsplit(":", 1)[1])


async def test_hub_web_server_serves_through_idle_and_slowloris_clients(hub_dir):
    proc, port = _start(hub_dir)
    plan = {"idle": {a: 20 for a in addresses(2, 3)},
            "slowloris": {a: 10 for a in addresses(5, 3)}}
    flood = open_flood("127.0.0.1", port, plan, drip_s=0.5)
    timings = []
    try:
        await asyncio.wait_for(flood.opened.wait(), 60)
        assert not [c.error for c in flood.connections if c.error]
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                started = time.monotonic()
                async with session.get(f"http://127.0.0.1:{port}/healthz",
                                       timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)) as r:
                    assert r.status == 200 and (await r.json())["hub"] == "test-hub"
                timings.append(time.monotonic() - started)
        await flood.wait_closed(timeout=IDLE_TIMEOUT_S + 30)
    finally:
        await flood.stop()
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    print(f"\n/healthz under the flood (s): {timings}")
    held = [c for c in flood.connections if not c.refused]
    refused = [c for c in flood.connections if c.refused]
    for address in addresses(2, 6):
        assert len([c for c in held if c.address == address]) == PER_ADDRESS, address
    assert len(refused) == 90 - 6 * PER_ADDRESS
    headers, body = refused[0].refusal()
    assert (headers["retry-after"], body["reason"]) == ("1", "too_many_connections")
    assert body["error"] == (f"your address already has {PER_ADDRESS} connections open here, "
                             "the most allowed; close some, or reuse them, and retry")
    for conn in held:
        assert conn.closed is not None and conn.answer == b"", conn
        assert conn.lifetime >= IDLE_TIMEOUT_S * 0.95, conn
    assert min(c.drips for c in held if c.kind == "slowloris") >= 3
    assert "Traceback" not in stderr and "Too many open files" not in stderr, stderr
