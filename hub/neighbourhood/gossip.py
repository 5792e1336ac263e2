"""Gossip with LAN neighbours: compare the gateway checkpoints each hub saw; raise the fork alarm.

A gateway can show each hub its own log (a split view) and each hub alone would never know.
Hubs on one LAN share the same gateway's latest checkpoint they each saw; two that cannot both
be true (`federation/tlog/fork.py`) are a fork. Then the hub keeps both signed checkpoints as
proof, tells the owner (a hub event for notifier plugins, a line in `porchlight requests
list`), and withholds every new request from that gateway until the owner has looked
(`porchlight requests resume`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import aiohttp

from federation.bodies import BodyTooLarge, read_body
from federation.errors import FederationError
from federation.neighbourhood_log import checkpoint_verifier
from federation.tlog.checkpoint import CheckpointError
from federation.tlog.fork import ConsistencyNeeded, SplitView, find_split_view
from federation.tlog.note import MAX_NOTE_BYTES
from hub.timeutil import iso, utcnow

log = logging.getLogger(__name__)

ALARM_KEY = "fork_alarm"
RESUMED_KEY = "fork_resumed"  # the pair the owner looked at: not raised again
FORKS_DIR = "forks"  # under the data dir's federation/ folder: the evidence, kept after resume
MAX_ANSWER_BYTES = MAX_NOTE_BYTES + 1024


def fork_alarm(db) -> dict | None:
    """Return the raised fork alarm (gateway, why, peer, found, proof folder), if any."""
    row = db.execute("select value from federation_state where key = ?", [ALARM_KEY]).fetchone()
    return json.loads(row[0]) if row else None


def fork_evidence(hub, alarm: dict) -> dict[str, str | None]:
    """Return the two signed checkpoints an alarm keeps as proof ({"ours", "theirs"}; None
    for one no longer on disk)."""
    folder = hub.data.root / alarm["proof"]
    found: dict[str, str | None] = {}
    for side in ("ours", "theirs"):
        path = folder / f"{side}.checkpoint"
        try:
            found[side] = path.read_text() if path.stat().st_size <= MAX_ANSWER_BYTES else None
        except OSError:
            found[side] = None
    return found


def raise_fork_alarm(hub, gateway_kid: str, split: SplitView, peer: str) -> dict:
    """Keep both checkpoints as proof, record the alarm, and tell the owner."""
    found = utcnow()
    folder = hub.data.root / "federation" / FORKS_DIR / found.strftime("%Y%m%dT%H%M%S%fZ")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ours.checkpoint").write_text(split.ours)
    (folder / "theirs.checkpoint").write_text(split.theirs)
    (folder / "fork.json").write_text(json.dumps(
        {"gateway": gateway_kid, "why": split.why, "peer": peer, "found": iso(found)}) + "\n")
    alarm = {"gateway": gateway_kid, "why": split.why, "peer": peer, "found": iso(found),
             "proof": str(Path("federation") / FORKS_DIR / folder.name), "pair": pair_id(split)}
    with hub.db.write_lock:
        hub.db["federation_state"].upsert({"key": ALARM_KEY, "value": json.dumps(alarm)},
                                          pk="key")
    log.error("FORK: gateway %s showed this hub and LAN neighbour %s two logs that cannot both "
              "be true (%s); both checkpoints kept in %s", gateway_kid, peer, split.why,
              alarm["proof"])
    hub.emit({"kind": "fork", "gateway": gateway_kid, "peer": peer, "proof": alarm["proof"],
              "summary": f"the gateway showed this hub and a LAN neighbour different logs "
                         f"({split.why}); its new requests are withheld until you look: "
                         "porchlight requests list"})
    return alarm


def pair_id(split: SplitView) -> str:
    """Return an id of the two checkpoints of a split view, in either order."""
    first, second = sorted((split.ours, split.theirs))
    return hashlib.sha256(f"{first}\0{second}".encode()).hexdigest()


def already_resumed(db, split: SplitView) -> bool:
    """Say whether the owner already looked at this very pair of checkpoints."""
    row = db.execute("select value from federation_state where key = ?", [RESUMED_KEY]).fetchone()
    return row is not None and row[0] == pair_id(split)


def clear_fork_alarm(hub) -> dict | None:
    """Lift the alarm once the owner has looked (the proof stays on disk); return it."""
    alarm = fork_alarm(hub.db)
    if alarm is not None:
        with hub.db.write_lock:
            hub.db["federation_state"].upsert({"key": RESUMED_KEY, "value": alarm["pair"]},
                                              pk="key")
            hub.db["federation_state"].delete(ALARM_KEY)
    return alarm


async def fetch_peer_checkpoint(session: aiohttp.ClientSession, origin: str) -> str | None:
    """Return the gateway checkpoint a LAN neighbour last saw, or None."""
    try:
        async with session.get(f"{origin}/lan/v1/checkpoint") as reply:
            if reply.status != 200:
                return None
            body = await read_body(reply, MAX_ANSWER_BYTES)
        value = json.loads(body).get("checkpoint")
    except (aiohttp.ClientError, TimeoutError, BodyTooLarge, ValueError, AttributeError) as err:
        log.info("LAN: no checkpoint from %s: %s", origin, err)
        return None
    return value if isinstance(value, str) else None


async def compare_with_peer(client, gateway_jwk: dict, ours: str, theirs: str
                            ) -> SplitView | None:
    """Return the split view between our checkpoint and a neighbour's, asking the gateway for
    a consistency proof when the sizes differ; None when they agree or cannot be compared."""
    verifier = checkpoint_verifier(gateway_jwk)
    try:
        return find_split_view(verifier, ours, theirs)
    except ConsistencyNeeded as need:
        try:
            proof = await client.get_consistency_proof(need.old_size, need.new_size)
        except FederationError as err:
            log.warning("gossip: the gateway gave no consistency proof from %s to %s: %s",
                        need.old_size, need.new_size, err)
            return None
        return find_split_view(verifier, ours, theirs, proof)
    except CheckpointError:
        # Another gateway's log, or not a checkpoint at all: nothing to compare.
        return None
