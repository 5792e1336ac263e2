"""A C2SP tlog-witness: cosignature/v1 lines checked by a second implementation written here
from the spec, and a real `porchlight witness run` that cosigns only consistent checkpoints."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import struct
import subprocess
import sys

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from federation.tlog.checkpoint import Checkpoint, sign_checkpoint
from federation.tlog.cosignature import CosignatureSigner, CosignatureVerifier, verify_cosignatures
from federation.tlog.merkle import MemoryTree
from federation.tlog.note import NoteSigner
from hub.cli.main import main as porchlight

ORIGIN = "example.org/log"


# -- a second implementation, from the text of c2sp.org/tlog-cosignature ----------------------

def spec_key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + b"\x04" + public).digest()[:4]


def spec_verify(line: str, name: str, public: bytes, checkpoint_text: str) -> int | None:
    """Return the timestamp of a valid cosignature line by (name, key), else None."""
    prefix = "\u2014 " + name + " "
    if not line.startswith(prefix) or not line.endswith("\n"):
        return None
    blob = base64.b64decode(line[len(prefix):-1])
    if blob[:4] != spec_key_id(name, public) or len(blob) != 4 + 8 + 64:
        return None
    (timestamp,) = struct.unpack(">Q", blob[4:12])
    message = b"cosignature/v1\n" + b"time " + str(timestamp).encode() + b"\n" \
        + checkpoint_text.encode()
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(blob[12:], message)
    except Exception:
        return None
    return timestamp


def spec_cosign(name: str, key: Ed25519PrivateKey, checkpoint_text: str, timestamp: int) -> str:
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    message = b"cosignature/v1\ntime %d\n" % timestamp + checkpoint_text.encode()
    blob = spec_key_id(name, public) + struct.pack(">Q", timestamp) + key.sign(message)
    return "\u2014 " + name + " " + base64.b64encode(blob).decode() + "\n"


def _log(entries: int, fork_at: int | None = None) -> MemoryTree:
    return MemoryTree.from_entries(
        (b"fork" if fork_at is not None and i >= fork_at else b"entry") + str(i).encode()
        for i in range(entries))


def test_cosignature_lines_follow_the_spec_both_ways():
    log_key = NoteSigner.generate(ORIGIN)
    tree = _log(7)
    signed = sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), log_key)
    text = signed[:signed.index("\n\n") + 1]
    witness_key = Ed25519PrivateKey.generate()
    public = witness_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ours = CosignatureSigner("witness.example/w1", witness_key)

    line = ours.cosign(text, 1679315147)
    assert spec_verify(line, "witness.example/w1", public, text) == 1679315147
    assert spec_verify(line, "witness.example/w1", public, text.replace("7\n", "8\n", 1)) is None

    theirs = spec_cosign("witness.example/w1", witness_key, text, 1700000000)
    found = verify_cosignatures(signed + theirs, [ours.verifier])
    assert [(c.witness, c.timestamp) for c in found] == [("witness.example/w1", 1700000000)]
    # Another witness's line, or a line with a flipped byte, is not counted.
    other = CosignatureSigner("witness.example/w2", Ed25519PrivateKey.generate())
    assert verify_cosignatures(signed + other.cosign(text, 5), [ours.verifier]) == []
    blob = bytearray(base64.b64decode(theirs.split()[-1]))
    blob[-1] ^= 1
    forged = f"\u2014 witness.example/w1 {base64.b64encode(bytes(blob)).decode()}\n"
    assert verify_cosignatures(signed + forged, [ours.verifier]) == []
    # The vkey round-trips and its key ID is the spec's.
    vkey = ours.verifier.to_string()
    assert CosignatureVerifier.from_string(vkey) == ours.verifier
    assert vkey.split("+")[1] == spec_key_id("witness.example/w1", public).hex()


def _submit_body(old: int, proof: list[bytes], signed: str) -> bytes:
    lines = [f"old {old}"] + [base64.b64encode(h).decode() for h in proof]
    return ("\n".join(lines) + "\n\n" + signed).encode()


async def test_a_witness_cosigns_only_checkpoints_consistent_with_the_last(tmp_path, capsys):
    data = tmp_path / "witness"
    assert porchlight(["witness", "init", "--data", str(data), "--name", "witness.example/w1"]) == 0
    vkey = re.search(r"witness key \(give it .*\): (\S+)", capsys.readouterr().out).group(1)
    verifier = CosignatureVerifier.from_string(vkey)
    log_key = NoteSigner.generate(ORIGIN)
    from federation.witness.operator import follow_log

    follow_log(data, ORIGIN, log_key.verifier().to_string())
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "witness", "run", "--data", str(data),
                             "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        url = re.search(r"listening on (\S+)", proc.stdout.readline()).group(1)
        honest, fork = _log(12), _log(12, fork_at=6)

        def checkpoint(tree: MemoryTree, size: int, key=log_key) -> str:
            return sign_checkpoint(Checkpoint(ORIGIN, size, tree.root(size)), key)

        async with aiohttp.ClientSession() as http:
            async def post(body: bytes) -> tuple[int, str, str]:
                async with http.post(url + "/add-checkpoint", data=body) as reply:
                    return reply.status, await reply.text(), reply.content_type

            first = checkpoint(honest, 5)
            status, body, _ = await post(_submit_body(0, [], first))
            assert status == 200
            assert [c.witness for c in verify_cosignatures(first + body, [verifier])] == [
                "witness.example/w1"]
            second = checkpoint(honest, 8)
            status, body, _ = await post(_submit_body(5, honest.consistency_proof(5, 8), second))
            assert status == 200
            # The fork: same size, another root; then a longer forked tree with its own proof.
            assert await post(_submit_body(8, [], checkpoint(fork, 8))) == (
                409, "8\n", "text/x.tlog.size")
            assert (await post(_submit_body(8, fork.consistency_proof(8, 12),
                                            checkpoint(fork, 12))))[0] == 422
            # A stale old size, an unknown log, a foreign key, a malformed body.
            assert await post(_submit_body(5, honest.consistency_proof(5, 12),
                                           checkpoint(honest, 12))) == (
                409, "8\n", "text/x.tlog.size")
            stranger = NoteSigner.generate("example.org/other")
            assert (await post(_submit_body(0, [], sign_checkpoint(
                Checkpoint("example.org/other", 1, honest.root(1)), stranger))))[0] == 404
            assert (await post(_submit_body(8, honest.consistency_proof(8, 12), checkpoint(
                honest, 12, NoteSigner.generate(ORIGIN)))))[0] == 403
            assert (await post(b"old 8\nnot base64!\n\n" + checkpoint(honest, 12).encode()))[0] == 400
            # The honest log goes on being cosigned.
            status, body, _ = await post(_submit_body(8, honest.consistency_proof(8, 12),
                                                      checkpoint(honest, 12)))
            assert status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
