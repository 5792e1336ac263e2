"""The add-checkpoint rules (C2SP tlog-witness) on outside input: any body gets one of the
spec's statuses and changes the witness's memory only when it is cosigned; a hub's memory
(in its database) and the stand-alone witness's (its own file) answer alike."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.keys import generate_signing_key
from federation.neighbourhood_log import checkpoint_signer
from federation.tlog.checkpoint import Checkpoint, sign_checkpoint
from federation.tlog.cosignature import CosignatureSigner, verify_cosignatures
from federation.tlog.merkle import MemoryTree
from federation.tlog.witness import add_checkpoint
from federation.witness.state import WitnessState
from hub.neighbourhood.witness import HubWitnessMemory
from hub.service import Hub

STATUSES = {200, 400, 403, 404, 409, 422}


def _body(old: int, proof: list[bytes], signed: str) -> bytes:
    return "".join(f"{line}\n" for line in [f"old {old}"]
                   + [base64.b64encode(h).decode() for h in proof]).encode() + b"\n" \
        + signed.encode()


def _memories(tmp_path, hub_dir, log_key):
    signer = checkpoint_signer(log_key)
    state = WitnessState(tmp_path / "witness.db")
    state.add_log(signer.name, signer.verifier().to_string())
    hub = Hub(hub_dir)
    return signer, state, hub, HubWitnessMemory(hub.db, signer.verifier())


def test_the_hub_and_the_stand_alone_witness_answer_alike(tmp_path, hub_dir):
    log_key = generate_signing_key()
    signer, state, hub, hub_memory = _memories(tmp_path, hub_dir, log_key)
    witness = CosignatureSigner("witness.example/w", Ed25519PrivateKey.generate())
    tree = MemoryTree.from_entries(b"entry %d" % i for i in range(9))
    fork = MemoryTree.from_entries(b"fork %d" % i for i in range(9))

    def checkpoint(t: MemoryTree, size: int) -> str:
        return sign_checkpoint(Checkpoint(signer.name, size, t.root(size)), signer)

    steps = [
        (_body(0, [], checkpoint(tree, 4)), 200),
        (_body(4, tree.consistency_proof(4, 6), checkpoint(tree, 6)), 200),
        (_body(6, [], checkpoint(fork, 6)), 409),
        (_body(4, tree.consistency_proof(4, 9), checkpoint(tree, 9)), 409),
        (_body(6, fork.consistency_proof(6, 9), checkpoint(fork, 9)), 422),
        (_body(6, tree.consistency_proof(6, 9), checkpoint(tree, 9)), 200),
    ]
    try:
        for memory in (state, hub_memory):
            for body, status in steps:
                answer = add_checkpoint(memory, witness, body, 1_700_000_000)
                assert answer.status == status, (memory, answer)
                if status == 409:
                    assert (answer.body, answer.content_type) == ("6\n", "text/x.tlog.size")
                if status == 200:
                    signed = body.decode().split("\n\n", 1)[1]
                    assert verify_cosignatures(signed + answer.body, [witness.verifier])
            assert memory.get(signer.name).size == 9
        # Another log's checkpoint: unknown to both.
        other = checkpoint_signer(generate_signing_key())
        stranger = sign_checkpoint(Checkpoint(other.name, 1, tree.root(1)), other)
        assert add_checkpoint(hub_memory, witness, _body(0, [], stranger), 1).status == 404
    finally:
        state.close()
        hub.close()


def test_any_body_gets_a_spec_status_and_stores_nothing_unless_cosigned(tmp_path, hub_dir):
    signer, state, hub, hub_memory = _memories(tmp_path, hub_dir, generate_signing_key())
    witness = CosignatureSigner("witness.example/w", Ed25519PrivateKey.generate())
    tree = MemoryTree.from_entries(b"entry %d" % i for i in range(3))
    valid = _body(0, [], sign_checkpoint(Checkpoint(signer.name, 3, tree.root()), signer))

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(
        st.binary(max_size=2000),
        st.text(alphabet="old 0123456789\n\u2014=+/AQgw-", max_size=400).map(str.encode),
        # The valid body with bytes flipped, cut or added.
        st.tuples(st.integers(0, len(valid) - 1), st.binary(min_size=1, max_size=3),
                  st.booleans()).map(
            lambda t: valid[:t[0]] + t[1] + valid[t[0] + (1 if t[2] else 0):])))
    def check(body: bytes) -> None:
        for memory in (state, hub_memory):
            before = memory.get(signer.name)
            answer = add_checkpoint(memory, witness, body, 1)
            assert answer.status in STATUSES
            if answer.status != 200:
                assert memory.get(signer.name) == before

    try:
        check()
    finally:
        state.close()
        hub.close()
