"""The witness policy `porchlight join` sets: how many of the witnesses this hub trusts (the
owner's `[witnesses] keys` and its LAN neighbours' witnesses) must have cosigned a checkpoint.

The default k is 1 when the gateway's checkpoint at join time already carries a cosignature by
a witness this hub trusts, else 0 (docs/witness.md says why): requiring a witness that the
gateway does not ask would drop every request, so the owner would never see what the police
ask for.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp
import tomlkit

from federation.errors import FederationError
from federation.http import PublicGatewayClient
from federation.mdns import browse
from federation.tlog.cosignature import verify_cosignatures
from hub.config import load_config
from hub.neighbourhood.lan import LanDirectory
from hub.neighbourhood.witness import pin_lan_witness, set_config_value, trusted_witnesses

log = logging.getLogger(__name__)

LAN_BROWSE_S = 3.0  # how long join listens for LAN neighbours (mDNS answers come within ~1 s)
DEFAULT_K = 1


@dataclass(frozen=True)
class PolicyChoice:
    """The k join left in config.toml, whether join chose it, and who cosigned at join time."""

    k: int
    chosen: bool
    trusted: int
    cosigned_by: list[str]


def owner_set_k(config_text: str) -> bool:
    """Say whether the owner wrote `min` under [witnesses] themselves."""
    document = tomlkit.parse(config_text)
    return "min" in document.get("witnesses", {})


async def learn_lan_witnesses(hub) -> int:
    """Find LAN hubs by mDNS now, pin the witness keys they serve; return how many were new."""
    from hub.household import hub_key

    interfaces = list(hub.config.lan.interfaces) or None
    peers = await asyncio.to_thread(browse, LAN_BROWSE_S, interfaces, "hub")
    directory = LanDirectory(None, own_kid=hub_key(hub.data).kid)
    directory.peers = {p.kid: p for p in peers if p.kid != directory.own_kid}
    pinned = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for kid in directory.peers:
            verifier = await directory.witness_of(kid, session)
            if verifier is not None and await asyncio.to_thread(pin_lan_witness, hub.db, kid,
                                                                verifier):
                pinned += 1
    return pinned


async def choose_witness_policy(hub, membership) -> PolicyChoice:
    """Set the default k after joining, unless the owner set one; return what was chosen."""
    text = hub.data.config.read_text(encoding="utf-8")
    if owner_set_k(text):
        return PolicyChoice(hub.config.witnesses.min, False, len(hub.config.witnesses.keys), [])
    if hub.config.lan.enabled:
        await learn_lan_witnesses(hub)
    trusted = trusted_witnesses(hub.config, hub.db)
    cosigned: list[str] = []
    if trusted:
        try:
            async with PublicGatewayClient(membership.url,
                                           gateway_kid=membership.gateway_kid) as client:
                checkpoint = await client.get_checkpoint()
            cosigned = sorted(c.witness for c in verify_cosignatures(checkpoint, trusted))
        except FederationError as err:
            log.warning("could not read the gateway's checkpoint: %s", err)
    k = DEFAULT_K if cosigned else 0
    if k:
        set_config_value(hub.data, "witnesses", "min", k)
        # A running hub (the web UI's join) checks its next request against the new k.
        hub.config = load_config(hub.data.root)
    return PolicyChoice(k, True, len(trusted), cosigned)
