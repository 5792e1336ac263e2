"""Web UI benchmark: page weight and server time per page with 4 cameras, and sign-in cost.

Run: python -m tests.bench.bench_web [--cameras 4] [--rounds 20]

Setup: a hub with --cameras synthetic cameras, served by a real `porchlight run` over HTTPS,
recording for a few seconds so every page has pictures and events to show; an owner signed in.

- Baseline: the server time of GET /healthz (a JSON answer, no session, no template), in the
  same process and run.
- Per page: the median server time (request sent to last byte, over --rounds), its ratio to the
  baseline, and the page weight (the HTML plus every style sheet, script and image it loads).
- Sign-in: the median time of a sign-in (one age scrypt unlock of the household identity),
  against the baseline of pyrage's scrypt decrypt of the same file in this process.

Prints figures and ratios; asserts no timing.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from pathlib import Path

import pyrage

from hub.passphrase_seal import DEFAULT_WORK_FACTOR
from tests.hub.web.conftest import PASSPHRASE, WebHub, sign_in

PAGES = ("/", "/cameras/cam1", "/settings", "/recordings", "/requests", "/neighbourhood")
ASSET = re.compile(r'(?:src|href)="(/static/[^"?]+|/cameras/[^"?]+\.jpg)')


async def _timed_get(client, path: str) -> tuple[float, bytes, int]:
    started = time.perf_counter()
    async with client.get(path) as reply:
        body = await reply.read()
    return time.perf_counter() - started, body, reply.status


async def _measure(hub: WebHub, rounds: int) -> dict:
    results: dict = {"pages": []}
    async with hub.client() as client:
        health = [(await _timed_get(client, "/healthz"))[0] for _ in range(rounds)]
        results["healthz_ms"] = statistics.median(health) * 1000
        logins = []
        for _ in range(3):
            started = time.perf_counter()
            reply = await sign_in(client, "owner", PASSPHRASE)
            assert reply.status == 303, (reply.status, await reply.text())
            logins.append(time.perf_counter() - started)
        results["sign_in_ms"] = statistics.median(logins) * 1000
        for path in PAGES:
            times, body, status = [], b"", 0
            for _ in range(rounds):
                elapsed, body, status = await _timed_get(client, path)
                times.append(elapsed)
            if status != 200:
                results["pages"].append({"page": path, "status": status})
                continue
            weight = len(body)
            for asset in sorted(set(ASSET.findall(body.decode()))):
                weight += len((await _timed_get(client, asset))[1])
            median = statistics.median(times) * 1000
            results["pages"].append({"page": path, "server_ms": median,
                                     "ratio": median / results["healthz_ms"], "bytes": weight})
    sealed = (hub.root / "keys" / "household.age").read_bytes()
    started = time.perf_counter()
    try:
        pyrage.passphrase.decrypt(sealed, PASSPHRASE)
        results["scrypt_ms"] = (time.perf_counter() - started) * 1000
    except pyrage.DecryptError:
        # rage caps the scrypt work factor it accepts by what this machine does in a moment;
        # a busy machine may refuse a file sealed while it was idle. No baseline then.
        results["scrypt_ms"] = float("nan")
    return results


def main(cameras: int = 4, rounds: int = 20, record_s: float = 12.0,
         work_factor: int = DEFAULT_WORK_FACTOR) -> dict:
    """Run the benchmark; print and return its figures."""
    with tempfile.TemporaryDirectory(prefix="bench-web-") as scratch:
        hub = WebHub(Path(scratch) / "bench", cameras=tuple(f"cam{i + 1}" for i in range(cameras)),
                     work_factor=work_factor)
        hub.start()
        try:
            time.sleep(record_s)
            results = asyncio.run(_measure(hub, rounds))
        finally:
            hub.stop()
    print(f"web UI, {cameras} cameras, median of {rounds} requests over HTTPS")
    print(f"  baseline GET /healthz: {results['healthz_ms']:.1f} ms")
    for page in results["pages"]:
        if "server_ms" not in page:
            print(f"  {page['page']:<16} HTTP {page['status']} (not measured)")
            continue
        print(f"  {page['page']:<16} {page['server_ms']:6.1f} ms ({page['ratio']:.1f}x healthz), "
              f"{page['bytes'] / 1024:6.1f} KiB with its assets")
    print(f"  sign-in at scrypt 2^{work_factor}: {results['sign_in_ms']:.0f} ms; baseline pyrage "
          "unlock of the same key "
          f"{results['scrypt_ms']:.0f} ms ({results['sign_in_ms'] / results['scrypt_ms']:.2f}x)")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    main(args.cameras, args.rounds)
