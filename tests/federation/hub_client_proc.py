"""A tiny stand-in hub for process tests: joins a gateway, streams, posts alerts on command.

Run: python -m tests.federation.hub_client_proc --state DIR --gateway URL --lat LAT --lon LON
     [--code INVITE]

It keeps its key, membership and last stored sequence in DIR, so a restarted process resumes
where the last one stopped. It prints one JSON object per line on stdout:
  {"event": "joined", "kid": ...}          after joining (or loading the membership)
  {"event": "connected"}                   each time the stream connects
  {"event": "alert", "seq": N, "id": ..., "text": ..., "t": MONOTONIC}  per verified alert
  {"event": "posted", "id": ..., "t0": MONOTONIC}                       per posted alert
  {"event": "error", "reason": ...}
and reads commands on stdin: "post CATEGORY TEXT...". SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from federation.cells import cell_for
from federation.errors import FederationError
from federation.keys import generate_signing_key, load_private_key, save_private_key
from federation.member.client import GatewayClient, Membership, join_gateway, verify_relayed


def emit(**event: object) -> None:
    """Print one event line and flush it."""
    print(json.dumps(event), flush=True)


def write_atomic(path: Path, text: str) -> None:
    """Replace a file's contents so a crash leaves the old or the new version."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


async def run(args: argparse.Namespace) -> int:
    """Join if needed, then stream and obey stdin commands until SIGTERM."""
    state = Path(args.state)
    state.mkdir(parents=True, exist_ok=True)
    key_path = state / "hub.key"
    if key_path.exists():
        key = load_private_key(key_path)
    else:
        key = generate_signing_key()
        save_private_key(key, key_path)
    cell = cell_for(args.lat, args.lon)
    membership_path = state / "membership.json"
    if membership_path.exists():
        membership = Membership.from_dict(json.loads(membership_path.read_text()))
    else:
        membership = await join_gateway(args.gateway, args.code, key, cell)
        write_atomic(membership_path, json.dumps(membership.to_dict()))
    seq_path = state / "seq"
    since = int(seq_path.read_text()) if seq_path.exists() else membership.since
    emit(event="joined", kid=key.kid, cell=cell, since=since)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    client = GatewayClient.for_membership(membership, key)

    def store_seq(seq: int) -> None:
        write_atomic(seq_path, str(seq))

    async def consume() -> None:
        def state_changed(state: str) -> None:
            emit(event=state)

        async for message in client.stream(since, store_seq, on_state=state_changed):
            received = time.monotonic()
            verified = verify_relayed(message, gateway_kid=membership.gateway_kid, now=time.time())
            emit(
                event="alert",
                seq=message.seq,
                id=message.id,
                text=verified.claims["text"],
                author=verified.kid,
                t=received,
            )

    async def commands() -> None:
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            parts = line.decode().strip().split(" ", 2)
            if len(parts) == 3 and parts[0] == "post":
                token = client.sign_alert(parts[1], parts[2], cell)
                t0 = time.monotonic()
                try:
                    alert_id = await client.post_alert(token)
                except FederationError as err:
                    emit(event="error", reason=err.reason, message=str(err))
                    continue
                emit(event="posted", id=alert_id, t0=t0)

    tasks = [
        asyncio.create_task(consume(), name="consume"),
        asyncio.create_task(commands(), name="commands"),
        asyncio.create_task(stop.wait(), name="stop"),
    ]
    try:
        done, _ = await asyncio.wait([tasks[0], tasks[2]], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is not None:
                err = task.exception()
                emit(
                    event="error",
                    reason=getattr(err, "reason", type(err).__name__),
                    message=str(err),
                )
                return 1
        return 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()


def main() -> int:
    """Parse arguments and run the hub."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", required=True)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--code")
    parser.add_argument("--lat", type=float, required=True)
    parser.add_argument("--lon", type=float, required=True)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
