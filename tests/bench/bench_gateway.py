"""Gateway benchmark: fan-out of one alert to N WebSocket hubs; verified messages per second.

Run: python -m tests.bench.bench_gateway [--hubs 1000] [--alerts 5] [--messages 2000]

Fan-out: a gateway process, N hubs connected by hop-signed WebSockets from this process, all
in one cell; one member posts an alert and every hub records when its frame arrives
(CLOCK_MONOTONIC is shared by processes on Linux). Memory per hub is the gateway's resident
set growth while the N streams connect, divided by N.

Throughput: raw Ed25519 verifies per second of a JWS signing input, measured here, against
(1) the gateway's verification of an alert (JWS with every check and the schema), (2) its
whole alert pipeline in process (verification, range check, quota, replay, SQLite commit,
queueing) and (3) alerts posted over HTTP to a gateway process, each also
carrying an RFC 9421 signature the gateway verifies. Prints figures and ratios; asserts no
timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
CELL_LATLON = (52.3731, 4.8926)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _seed(data: Path, count: int, cell: str) -> list:
    """Create a gateway with count members (keys returned); fast, straight into its store."""
    from federation.gateway.operator import init_gateway
    from federation.gateway.settings import load_settings, render_settings, settings_path
    from federation.gateway.store import GatewayStore, Replay
    from federation.keys import generate_signing_key

    init_gateway(data, name="bench")
    settings = load_settings(data).model_copy(
        update={
            "alerts_per_hour": 1_000_000,
            "requests_per_minute": 10_000_000,
            "max_connections": count + 10,
            # Every simulated hub connects from 127.0.0.1.
            "max_connections_per_address": 2 * count + 10,
        }
    )
    settings_path(data).write_text(render_settings(settings))
    keys = [generate_signing_key() for _ in range(count)]
    now = time.time()
    with contextlib.closing(GatewayStore(data / "gateway.sqlite")) as store:
        for n, key in enumerate(keys):
            invite = f"{n:04X}"[-4:] if n < 65536 else key.kid[:4]
            store.add_invite(invite, "S" * 16, now=now, ttl_s=3600)
            store.add_member(
                kid=key.kid,
                jwk=dict(key.public_jwk),
                hop_kid=key.kid,
                hop_jwk=dict(key.public_jwk),
                cell=cell,
                invite_id=invite,
                invite_secret="S" * 16,
                replay=Replay(key.kid, f"seed{n}", now + 60),
                now=now,
            )
    return keys


class _GatewayProcess:
    def __init__(self, data: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "federation.gateway",
                "run",
                "--data",
                str(data),
                "--listen",
                "127.0.0.1:0",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"gateway did not start: {line!r}")
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        self.url, self.kid = fields["url"], fields["kid"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _fan_out(hubs: int, alerts: int, base: Path) -> dict:
    from federation.cells import cell_for
    from federation.hop import sign_request
    from federation.member.client import GatewayClient

    cell = cell_for(*CELL_LATLON)
    keys = _seed(base / "fanout", hubs + 1, cell)
    author, readers = keys[0], keys[1:]
    gateway = _GatewayProcess(base / "fanout")
    arrivals: list[dict[int, float]] = [{} for _ in readers]
    all_arrived = asyncio.Event()
    expected = 0
    done_count = 0
    try:
        rss_before = _rss_kib(gateway.proc.pid)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            sockets = []
            gate = asyncio.Semaphore(64)

            async def connect(key) -> aiohttp.ClientWebSocketResponse:
                url = gateway.url + "/v1/stream?since=0"
                async with gate:
                    headers = sign_request(key, "GET", url, b"", now=time.time())
                    return await session.ws_connect(url, headers=headers, heartbeat=None)

            began = time.perf_counter()
            sockets = await asyncio.gather(*(connect(key) for key in readers))
            connect_s = time.perf_counter() - began

            async def read(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
                nonlocal done_count
                async for msg in ws:
                    now = time.monotonic()
                    seq = json.loads(msg.data)["seq"]
                    arrivals[index][seq] = now
                    await ws.send_str(f'{{"ack":{seq}}}')
                    if seq == expected:
                        done_count += 1
                        if done_count == len(readers):
                            all_arrived.set()

            readers_tasks = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets)]
            await asyncio.sleep(1.0)
            rss_after = _rss_kib(gateway.proc.pid)
            latencies: list[float] = []
            async with GatewayClient(gateway.url, author, gateway_kid=gateway.kid) as client:
                for round_ in range(1, alerts + 1):
                    expected, done_count = round_, 0
                    all_arrived.clear()
                    token = client.sign_alert("safety", f"bench alert {round_}", cell)
                    t0 = time.monotonic()
                    await client.post_alert(token)
                    await asyncio.wait_for(all_arrived.wait(), 60)
                    latencies += [arrival[round_] - t0 for arrival in arrivals]
                    await asyncio.sleep(0.2)
            for ws in sockets:
                await ws.close()
            for task in readers_tasks:
                task.cancel()
            await asyncio.gather(*readers_tasks, return_exceptions=True)
    finally:
        gateway.stop()
    return {
        "hubs": hubs,
        "alerts": alerts,
        "connect_s": connect_s,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * _percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies),
        "memory_per_hub_kib": (rss_after - rss_before) / hubs,
    }


def _raw_verifies_per_s(token: str, seconds: float = 1.0) -> float:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    message = token.rsplit(".", 1)[0].encode()
    signature = private.sign(message)
    public = private.public_key()
    count, began = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        for _ in range(200):
            public.verify(signature, message)
        count += 200
    return count / elapsed


async def _pipeline(messages: int, base: Path, concurrency: int = 64) -> tuple[float, float, str]:
    from federation.cells import cell_for
    from federation.gateway.app import Gateway
    from federation.gateway.settings import load_settings
    from federation.jws import verify_message
    from federation.keys import KeySet
    from federation.member.client import GatewayClient
    from federation.schemas import TYP_ALERT

    cell = cell_for(*CELL_LATLON)
    data = base / "pipeline"
    (key,) = _seed(data, 1, cell)
    async with Gateway(data, settings=load_settings(data)) as gateway:
        assert gateway.store is not None
        member = gateway.store.member(key.kid)
        client = GatewayClient("http://unused", key, gateway_kid=gateway.kid)
        tokens = [client.sign_alert("safety", f"alert number {n}", cell) for n in range(messages)]
        # The verification stage alone, exactly as the gateway calls it.
        trusted = KeySet([key.public_jwk])
        began = time.perf_counter()
        for token in tokens:
            verify_message(
                token, typ=TYP_ALERT, trusted=trusted, audience=gateway.kid, now=time.time()
            )
        verify_rate = messages / (time.perf_counter() - began)
        # The whole pipeline, with requests in flight together as a busy gateway has them.
        gate = asyncio.Semaphore(concurrency)

        async def accept(token: str) -> None:
            async with gate:
                await gateway.accept_alert(member, token)

        began = time.perf_counter()
        await asyncio.gather(*(accept(token) for token in tokens))
        pipeline_rate = messages / (time.perf_counter() - began)
    return verify_rate, pipeline_rate, tokens[0]


async def _http(messages: int, base: Path, concurrency: int = 8) -> float:
    from federation.cells import cell_for
    from federation.hop import sign_request
    from federation.member.client import GatewayClient

    cell = cell_for(*CELL_LATLON)
    data = base / "http"
    (key,) = _seed(data, 1, cell)
    gateway = _GatewayProcess(data)
    try:
        client = GatewayClient(gateway.url, key, gateway_kid=gateway.kid)
        url = gateway.url + "/v1/alerts"
        # Sign everything first, so the figure is the gateway's work, not the client's.
        requests = []
        for n in range(messages):
            body = client.sign_alert("safety", f"alert number {n}", cell).encode()
            requests.append((body, sign_request(key, "POST", url, body, now=time.time())))
        queue = list(reversed(requests))
        async with aiohttp.ClientSession() as session:

            async def worker() -> None:
                while queue:
                    body, headers = queue.pop()
                    async with session.post(url, data=body, headers=headers) as resp:
                        if resp.status != 202:
                            raise RuntimeError(
                                f"gateway answered {resp.status}: {await resp.text()}"
                            )
                        await resp.read()

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return messages / (time.perf_counter() - began)
    finally:
        gateway.stop()


def main(
    hubs: int = 1000,
    alerts: int = 5,
    messages: int = 2000,
    http_messages: int = 1000,
    raw_seconds: float = 1.0,
) -> dict:
    """Run both benchmarks, print the figures and return them."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        fan = asyncio.run(_fan_out(hubs, alerts, base))
        verify_rate, pipeline_rate, sample = asyncio.run(_pipeline(messages, base))
        raw = _raw_verifies_per_s(sample, raw_seconds)
        http_rate = asyncio.run(_http(http_messages, base))
    results = {
        "fan_out": fan,
        "throughput": {
            "raw_ed25519_verifies_s": raw,
            "verify_stage_s": verify_rate,
            "verify_stage_ratio": verify_rate / raw,
            "pipeline_alerts_s": pipeline_rate,
            "pipeline_ratio": pipeline_rate / raw,
            "http_alerts_s": http_rate,
            "http_ratio": http_rate / raw,
            # Each HTTP alert costs two Ed25519 verifies (hop signature and JWS).
            "http_verifies_ratio": 2 * http_rate / raw,
        },
    }
    print(
        f"fan-out to {fan['hubs']} WebSocket hubs ({fan['alerts']} alerts): "
        f"p50 {fan['p50_ms']:.1f} ms, p99 {fan['p99_ms']:.1f} ms, max {fan['max_ms']:.1f} ms; "
        f"connect all {fan['connect_s']:.2f} s; "
        f"gateway memory {fan['memory_per_hub_kib']:.1f} KiB/hub"
    )
    t = results["throughput"]
    print(
        f"raw Ed25519 verify {t['raw_ed25519_verifies_s']:.0f}/s; alert verification stage "
        f"{t['verify_stage_s']:.0f}/s (ratio {t['verify_stage_ratio']:.2f}); whole alert pipeline "
        f"{t['pipeline_alerts_s']:.0f}/s (ratio {t['pipeline_ratio']:.2f}); over HTTP with hop "
        f"auth {t['http_alerts_s']:.0f}/s (ratio {t['http_ratio']:.2f}, "
        f"{t['http_verifies_ratio']:.2f} counting both signatures)"
    )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hubs", type=int, default=1000)
    parser.add_argument("--alerts", type=int, default=5)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--http-messages", type=int, default=1000)
    args = parser.parse_args()
    main(
        hubs=args.hubs, alerts=args.alerts, messages=args.messages, http_messages=args.http_messages
    )
