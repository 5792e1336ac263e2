"""A LAN neighbour's witness key, learned over the LAN: served beside its hub key and signed by
it, pinned on first sight in the hub's database, and never swapped afterwards. Real aiohttp
servers on 127.0.0.1 stand in for the neighbours' LAN servers."""

from __future__ import annotations

import contextlib

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.keys import generate_signing_key
from federation.mdns import Advertised
from federation.replay import MemoryReplayStore
from federation.tlog.cosignature import CosignatureSigner
from hub.neighbourhood.lan import LanDirectory, LanService
from hub.neighbourhood.witness import (
    pin_lan_witness,
    pinned_lan_witnesses,
    sign_binding,
    trusted_witnesses,
)
from hub.service import Hub


def _witness(name: str) -> str:
    return CosignatureSigner(name, Ed25519PrivateKey.generate()).verifier.to_string()


@contextlib.asynccontextmanager
async def _neighbour(answer: dict):
    """Serve GET /lan/v1/key with a fixed answer; yield the server's port."""
    app = web.Application()

    async def key(request: web.Request) -> web.Response:
        return web.json_response(answer)

    app.router.add_get("/lan/v1/key", key)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]
    finally:
        await runner.cleanup()


async def test_a_lan_witness_key_is_pinned_once_and_must_be_signed_by_its_hub(hub_dir):
    (hub_dir / "config.toml").write_text((hub_dir / "config.toml").read_text()
                                         + '\n[lan]\nenabled = true\n')
    honest, forger = generate_signing_key(), generate_signing_key()
    first, second = _witness("porchlight-hub-witness/first"), _witness("porchlight-hub-witness/x")
    answers = {
        # Signed by its own hub key: pinned.
        "honest": {"kid": honest.kid, "jwk": honest.public_jwk, "witness": first,
                   "witness_signature": sign_binding(honest, first)},
        # A witness key signed by another key than the hub's: refused.
        "forged": {"kid": forger.kid, "jwk": forger.public_jwk, "witness": second,
                   "witness_signature": sign_binding(honest, second)},
        # No witness at all: nothing to pin.
        "plain": {"kid": (plain := generate_signing_key()).kid, "jwk": plain.public_jwk},
    }
    hub = Hub(hub_dir)
    try:
        async with (_neighbour(answers["honest"]) as port_a,
                    _neighbour(answers["forged"]) as port_b,
                    _neighbour(answers["plain"]) as port_c,
                    aiohttp.ClientSession() as session):
            lan = LanService(hub, generate_signing_key(), "127.0.0.1", 0, [],
                             MemoryReplayStore())
            lan.session = session
            lan.directory = LanDirectory(None)
            lan.directory.peers = {
                answers[name]["kid"]: Advertised(answers[name]["kid"], "hub", "127.0.0.1", port)
                for name, port in (("honest", port_a), ("forged", port_b), ("plain", port_c))}
            await lan.learn_witnesses()
            assert pinned_lan_witnesses(hub.db) == {honest.kid: first}
            assert [v.to_string() for v in trusted_witnesses(hub.config, hub.db)] == [first]

        # The same neighbour now serves another witness key, validly signed: the first stays.
        answers["honest"].update(witness=second, witness_signature=sign_binding(honest, second))
        async with _neighbour(answers["honest"]) as port, aiohttp.ClientSession() as session:
            lan.session = session
            lan.directory.peers = {honest.kid: Advertised(honest.kid, "hub", "127.0.0.1", port)}
            verifier = await lan.directory.witness_of(honest.kid, session)
            assert verifier is not None and verifier.to_string() == second
            assert pin_lan_witness(hub.db, honest.kid, verifier) is False
            await lan.learn_witnesses()
        assert pinned_lan_witnesses(hub.db) == {honest.kid: first}
    finally:
        hub.close()
