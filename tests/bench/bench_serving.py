"""Serving benchmark: what the hardened accept loop costs against aiohttp's own TCPSite.

Run: python -m tests.bench.bench_serving [--requests 3000] [--concurrency 50] [--rounds 3]

One aiohttp app answering a tiny GET, served in this process once by ``web.TCPSite`` (the
baseline) and once by ``federation.serving.HardenedServer``; a client in the same process
makes every request on a new connection (the worst case for an accept loop written by hand)
and then the same number on kept-alive connections. Prints requests per second and the ratio
to the baseline; asserts no timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from federation.serving import HardenedServer, ServerLimits


def _app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    return app


@contextlib.asynccontextmanager
async def _baseline() -> AsyncIterator[int]:
    runner = web.AppRunner(_app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _hardened(concurrency: int) -> AsyncIterator[int]:
    limits = ServerLimits(max_per_address=concurrency + 10)
    async with HardenedServer(_app(), "127.0.0.1", 0, limits=limits, access_log=None) as server:
        yield server.port


async def _rate(port: int, requests: int, concurrency: int, *, new_connections: bool) -> float:
    connector = aiohttp.TCPConnector(force_close=new_connections, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                async with session.get(f"http://127.0.0.1:{port}/") as reply:
                    assert reply.status == 200
                    await reply.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


async def _run(requests: int, concurrency: int, rounds: int) -> dict:
    results: dict = {"requests": requests, "concurrency": concurrency, "rounds": rounds}
    servers = {"aiohttp TCPSite": _baseline, "HardenedServer": lambda: _hardened(concurrency)}
    rates: dict[str, dict[str, list[float]]] = {name: {} for name in servers}
    # Rounds alternate between the two servers, so a busy moment on a shared machine hits
    # both; each figure is the median of its rounds.
    for _ in range(rounds):
        for name, serve in servers.items():
            async with serve() as port:
                await _rate(port, min(200, requests), concurrency, new_connections=True)
                for key, new in (("new connection per request", True),
                                 ("kept-alive connections", False)):
                    rate = await _rate(port, requests, concurrency, new_connections=new)
                    rates[name].setdefault(key, []).append(rate)
    for name, per_key in rates.items():
        results[name] = {key: round(statistics.median(v)) for key, v in per_key.items()}
    base, hardened = results["aiohttp TCPSite"], results["HardenedServer"]
    results["ratio"] = {key: round(hardened[key] / base[key], 2) for key in base}
    return results


def main(requests: int = 3000, concurrency: int = 50, rounds: int = 3) -> dict:
    """Run the benchmark and return its figures."""
    return asyncio.run(_run(requests, concurrency, rounds))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(main(args.requests, args.concurrency, args.rounds), indent=2))
