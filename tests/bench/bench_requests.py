"""Agency-request benchmark: intake throughput with a big log, proof sizes, time to the hubs.

Run: python -m tests.bench.bench_requests [--log-size 100000] [--requests 2000] [--hubs 100]

Setup: a gateway in this process with its transparency log pre-filled to --log-size entries
(1 KiB each, appended in batches straight into its tiles), a registry listing one agency, and
--hubs member hubs in the cells the requests' circle covers.

- Baseline: raw Ed25519 verifies per second of a request's JWS signing input.
- Intake in process: ``RequestService.accept_request`` with 64 at a time: every check (JWS,
  registry, scope, jurisdiction), quota and replay in SQLite, the log append (grouped: one
  signed checkpoint and one fsync per group), routing to the hubs, the tlog-proof and the
  push to live streams. Also the average group size.
- Intake over HTTP: POST /v1/requests, 16 at a time.
- Proofs at this log size: tlog-proof bundle bytes and hashes; consistency proof hashes; what
  a hub's ``verify_routed_request`` costs (signature, scope, inclusion, consistency).
- Time to the hubs: from an agency's POST to each of --hubs hubs having the request verified
  (``verify_routed_request``, i.e. ready to wait for the owner), p50 and p99, over a few
  requests. The hubs are WebSocket clients in this process.

Prints figures and ratios against the baseline measured in the same run; asserts no timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.agency.tool import AGENCY_KEY_FILE, init_agency
from federation.authority.tool import (
    add_agency,
    authority_jwk,
    authority_kid,
    init_authority,
    sign_registry,
)
from federation.cells import cells_covering_circle
from federation.gateway.app import Gateway
from federation.gateway.operator import create_invite, init_gateway
from federation.gateway.settings import load_settings, render_settings, settings_path
from federation.keys import generate_signing_key, load_private_key
from federation.member.client import GatewayClient, join_gateway
from federation.member.requests import verify_routed_request
from federation.neighbourhood_log import checkpoint_signer, checkpoint_verifier, log_origin
from federation.registry import verify_registry
from federation.replay import MemoryReplayStore
from federation.tlog.proof import parse_tlog_proof
from federation.tlog.tiles import DirectoryStorage, TileLog

CENTRE = (52.3731, 4.8926)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _prefill(data: Path, size: int) -> None:
    """Fill the gateway's log with filler entries and mark them indexed in its database."""
    key = load_private_key(data / "gateway.key")
    log = TileLog(
        DirectoryStorage(data / "log"), checkpoint_signer(key), origin=log_origin(key.kid)
    )
    filler = os.urandom(1024)
    step = 10_000
    for start in range(0, size, step):
        count = min(step, size - start)
        log.append_batch(filler[:1000] + i.to_bytes(8, "big") for i in range(start, start + count))
    db = sqlite3.connect(data / "gateway.sqlite")
    with db:
        db.executemany(
            "INSERT INTO log_entries (log_index, kind, signer, jwk) VALUES (?, 'filler', '', '{}')",
            ((i,) for i in range(size)),
        )
    db.close()


def _raw_verifies_per_s(token: str, seconds: float) -> float:
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    message = token.rsplit(".", 1)[0].encode()
    signature = private.sign(message)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(200):
            public.verify(signature, message)
        count += 200
    return count / (time.perf_counter() - started)


async def _run(base: Path, log_size: int, requests: int, hubs: int, raw_seconds: float) -> dict:
    from tests.federation.agency_fixtures import post_body, serve, sign_request

    results: dict[str, Any] = {"log_size": log_size}
    authority = base / "authority"
    init_authority(authority, "bench board")
    card = init_agency(base / "agency", "bench police")
    add_agency(
        authority,
        card,
        jurisdiction=(*CENTRE, 10_000.0),
        since="2024-01-01",
        contact="bench@example.org",
    )
    agency_key = load_private_key(base / "agency" / AGENCY_KEY_FILE)
    data = base / "gateway"
    init_gateway(data, name="bench", registry_key=authority_kid(authority))
    settings = load_settings(data).model_copy(
        update={
            "agency_requests_per_hour": 10**6,
            "requests_per_minute": 10**6,
            "max_connections": 10_000,
            "purge_interval_s": 3600,
        }
    )
    settings_path(data).write_text(render_settings(settings))
    started = time.perf_counter()
    _prefill(data, log_size)
    results["prefill_s"] = round(time.perf_counter() - started, 2)

    async with Gateway(data, settings=load_settings(data)) as gateway, serve(gateway) as url:
        assert gateway.requests is not None
        token = sign_registry(authority, audience=gateway.kid)
        body = json.dumps({"registry": token, "jwk": authority_jwk(authority)}).encode()
        status, answer = await post_body(url + "/v1/registry", body, "application/json")
        assert status == 201, answer
        registry = verify_registry(
            token,
            authority_jwk=authority_jwk(authority),
            authority_kid=authority_kid(authority),
            audience=gateway.kid,
            now=time.time(),
        )

        # Hubs spread over the cells a 300 m circle around the centre covers.
        cells = sorted(cells_covering_circle(*CENTRE, 300))
        clients = []
        for i in range(hubs):
            key = generate_signing_key()
            membership = await join_gateway(url, create_invite(data), key, cells[i % len(cells)])
            clients.append(GatewayClient.for_membership(membership, key))

        tokens = [sign_request(agency_key, gateway.kid, time.time()) for _ in range(requests)]
        raw = _raw_verifies_per_s(tokens[0], raw_seconds)
        results["raw_verify_s"] = round(raw)

        # Intake in process, 64 at a time.
        service = gateway.requests
        batches0, appended0 = service.committer.batches, service.committer.appended
        queue = list(tokens[: requests // 2])

        async def worker() -> None:
            while queue:
                await service.accept_request(queue.pop())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(64)))
        elapsed = time.perf_counter() - started
        rate = (requests // 2) / elapsed
        batches = service.committer.batches - batches0
        results["intake"] = {
            "requests_s": round(rate),
            "ratio_to_raw_verify": round(rate / raw, 3),
            "avg_group": round((service.committer.appended - appended0) / max(1, batches), 1),
        }

        # Over HTTP, 16 at a time.
        queue = list(tokens[requests // 2 :])

        async def http_worker() -> None:
            while queue:
                status, answer = await post_body(
                    url + "/v1/requests", queue.pop().encode(), "application/jose"
                )
                assert status == 201, answer

        started = time.perf_counter()
        await asyncio.gather(*(http_worker() for _ in range(16)))
        elapsed = time.perf_counter() - started
        results["intake_http"] = {"requests_s": round((requests - requests // 2) / elapsed)}

        # Proof sizes and verification cost at this size.
        log = service.log
        # A request in the middle of those accepted above (after the filler and the registry).
        index = log_size + 1 + requests // 2
        bundle = log.tlog_proof(index)
        proof = parse_tlog_proof(bundle)
        consistency = log.tiles.consistency_proof(log_size // 2, log.size)
        verifier = checkpoint_verifier(gateway.key.public_jwk)
        from federation.wire import StreamMessage

        entry = log.entry(index).decode()
        message = StreamMessage(
            1, "request", json.loads(_payload(entry))["jti"], entry, None, bundle
        )
        last = _checkpoint_at(log, log_size // 2)
        count, started = 0, time.perf_counter()
        while count < 300:
            verify_routed_request(
                message,
                registry=registry,
                gateway_kid=gateway.kid,
                last_checkpoint=last,
                verifier_key=verifier,
                now=time.time(),
                replay_store=None,
                consistency_proof=consistency,
            )
            count += 1
        per_s = count / (time.perf_counter() - started)
        results["proofs"] = {
            "log_size": log.size,
            "tlog_proof_bytes": len(bundle.encode()),
            "inclusion_hashes": len(proof.inclusion_proof),
            "consistency_hashes": len(consistency),
            "hub_verify_s": round(per_s),
            "hub_verify_ms": round(1000 / per_s, 3),
        }

        # Time from an agency's POST to each hub having verified the request.
        results["to_hubs"] = await _to_hubs(
            gateway, url, clients, registry, verifier, agency_key, rounds=3
        )
        for client in clients:
            await client.close()
    return results


def _payload(token: str) -> bytes:
    import base64

    segment = token.split(".")[1]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _checkpoint_at(log: Any, size: int) -> str:
    from federation.tlog.checkpoint import Checkpoint, sign_checkpoint

    # What a hub would have stored when the log had `size` entries (same key, same tree).
    root = log.tiles.root_at(size)
    return sign_checkpoint(Checkpoint(log.origin, size, root), log.tiles._signer)


async def _to_hubs(gateway, url, clients, registry, verifier, agency_key, rounds) -> dict:
    from tests.federation.agency_fixtures import post_body, sign_request

    gateway_kid = gateway.kid

    latencies: list[float] = []
    arrived: dict[int, asyncio.Event] = {}
    posted_at = [0.0]
    pending = [0]
    done = asyncio.Event()

    async def consume(position: int, client: GatewayClient) -> None:
        replay = MemoryReplayStore()
        last = None
        connected = arrived[position]
        # Start after the backlog the intake phases queued for this hub.
        since = gateway.store.member(client.hub_key.kid).last_seq
        async with contextlib.aclosing(
            client.stream(since, lambda seq: None, on_state=lambda s: connected.set())
        ) as messages:
            async for message in messages:
                proof = await client.consistency_for(message, last)
                verified = verify_routed_request(
                    message,
                    registry=registry,
                    gateway_kid=gateway_kid,
                    last_checkpoint=last,
                    verifier_key=verifier,
                    now=time.time(),
                    replay_store=replay,
                    consistency_proof=proof,
                )
                last = verified.store_checkpoint
                latencies.append(time.perf_counter() - posted_at[0])
                pending[0] -= 1
                if pending[0] == 0:
                    done.set()

    for position in range(len(clients)):
        arrived[position] = asyncio.Event()
    tasks = [asyncio.create_task(consume(i, c)) for i, c in enumerate(clients)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in arrived.values())), 30)
    await asyncio.sleep(0.2)
    for _ in range(rounds):
        done.clear()
        pending[0] = len(clients)
        token = sign_request(agency_key, gateway_kid, time.time())
        posted_at[0] = time.perf_counter()
        status, answer = await post_body(url + "/v1/requests", token.encode(), "application/jose")
        assert status == 201, answer
        await asyncio.wait_for(done.wait(), 60)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    ms = [value * 1000 for value in latencies]
    return {
        "hubs": len(clients),
        "rounds": rounds,
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(_percentile(ms, 0.99), 1),
    }


def main(
    log_size: int = 100_000,
    requests: int = 2000,
    hubs: int = 100,
    raw_seconds: float = 1.0,
) -> dict:
    """Run the benchmark and print its figures; return them."""
    with tempfile.TemporaryDirectory(prefix="porchlight-bench-requests-") as tmp:
        results = asyncio.run(_run(Path(tmp), log_size, requests, hubs, raw_seconds))
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-size", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--hubs", type=int, default=100)
    parser.add_argument("--raw-seconds", type=float, default=1.0)
    args = parser.parse_args()
    main(args.log_size, args.requests, args.hubs, args.raw_seconds)
