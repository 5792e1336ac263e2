"""The gateway's cosigning client on its own: after a restart it no longer knows what a witness
cosigned, the witness answers 409 with its size, and the client resubmits from there with a
proof; a witness that never answers times out and the checkpoint is published without it."""

from __future__ import annotations

import asyncio
import logging

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.gateway.settings import WitnessSetting
from federation.gateway.witnessing import Witnessing
from federation.tlog.cosignature import CosignatureSigner, verify_cosignatures
from federation.tlog.note import NoteSigner
from federation.tlog.tiles import TileLog
from federation.witness.operator import follow_log
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    no_leaked_tasks,
    no_leaked_threads,
)
from tests.federation.witness_fixtures import running_witness

ORIGIN = "example.org/gateway-log"


async def _run(fn):
    return await asyncio.to_thread(fn)


async def test_a_restarted_gateway_resubmits_from_the_size_the_witness_names(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="federation.gateway.witnessing")
    signer = NoteSigner.generate(ORIGIN)
    tiles = TileLog(tmp_path / "log", signer)
    with running_witness(tmp_path / "w", "witness.example/one") as witness:
        follow_log(witness.data, ORIGIN, signer.verifier().to_string())
        setting = [WitnessSetting(url=witness.url, vkey=witness.vkey)]
        for round_, entries in enumerate((5, 7)):
            tiles.append_batch(b"entry %d.%d" % (round_, i) for i in range(entries))
            # A fresh client each time: what a gateway holds after a restart.
            witnessing = Witnessing(tiles, setting, _run, timeout_s=5)
            witnessing.start()
            try:
                await witnessing.wait_published(tiles.size, 15)
                published = witnessing.published
            finally:
                await witnessing.stop()
            assert witnessing.published_size == tiles.size
            assert [c.witness for c in verify_cosignatures(published, [witness.verifier])] == [
                witness.name]
    # The second client started from size 0, was told 5, and proved 5 -> 12.
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "resubmitting" in m] == [
        f"witness {witness.url} last cosigned size 5; resubmitting from there"]
    assert not [m for m in messages if "refused" in m or "unreachable" in m]
    assert tiles.size == 12


async def test_a_witness_that_never_answers_times_out_and_the_checkpoint_is_published(
    tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="federation.gateway.witnessing")
    signer = NoteSigner.generate(ORIGIN)
    tiles = TileLog(tmp_path / "log", signer)
    tiles.append_batch([b"one", b"two"])
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read the request, never answer

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mute = WitnessSetting(url=f"http://127.0.0.1:{port}",
                          vkey=CosignatureSigner("witness.example/mute",
                                                 Ed25519PrivateKey.generate()).verifier.to_string())
    witnessing = Witnessing(tiles, [mute], _run, timeout_s=0.5)
    witnessing.start()
    try:
        await witnessing.wait_published(tiles.size, 15)
        assert witnessing.published_size == tiles.size
        assert witnessing.published == tiles.signed_checkpoint  # served, without cosignatures
    finally:
        await witnessing.stop()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    unreachable = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert unreachable == [f"witness http://127.0.0.1:{port} unreachable, will retry: "
                           "TimeoutError"], unreachable
