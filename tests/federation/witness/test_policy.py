"""The hub's witness policy as pure rules: k of the trusted witnesses must have cosigned."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.member.requests import CheckpointNotWitnessed, check_witness_policy
from federation.tlog.checkpoint import Checkpoint, sign_checkpoint
from federation.tlog.cosignature import CosignatureSigner
from federation.tlog.merkle import MemoryTree
from federation.tlog.note import NoteSigner, parse_note
from hub.config import parse_config
from hub.errors import ConfigError

ORIGIN = "example.org/log"


def _signed(size: int = 5) -> tuple[str, str]:
    tree = MemoryTree()
    for i in range(size):
        tree.append(b"entry %d" % i)
    signed = sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), NoteSigner.generate(ORIGIN))
    return signed, parse_note(signed)[0]


def test_k_of_the_trusted_witnesses_must_have_cosigned():
    signed, text = _signed()
    one, two, stranger = (CosignatureSigner(f"witness.example/{n}", Ed25519PrivateKey.generate())
                          for n in ("one", "two", "stranger"))
    trusted = [one.verifier, two.verifier]
    cosigned = signed + one.cosign(text, 1_700_000_000) + stranger.cosign(text, 1_700_000_000)

    assert check_witness_policy(signed, trusted, 0) == []
    assert check_witness_policy(cosigned, trusted, 1) == ["witness.example/one"]
    with pytest.raises(CheckpointNotWitnessed) as caught:
        check_witness_policy(cosigned, trusted, 2)
    assert caught.value.message == (
        "the log checkpoint is cosigned by 1 of the 2 trusted witnesses this hub requires "
        "(witness.example/one); without them the gateway could be showing this hub a forked log")
    assert caught.value.reason == "not_witnessed"
    # A line under a trusted name and key ID whose signature is on another checkpoint counts
    # for nothing, nor does the same witness twice.
    _, other_text = _signed(6)
    forged = signed + two.cosign(other_text, 1_700_000_000) + one.cosign(text, 1) \
        + one.cosign(text, 2)
    with pytest.raises(CheckpointNotWitnessed, match="cosigned by 1 of the 2"):
        check_witness_policy(forged, trusted, 2)


BASE = '[hub]\nname = "maple-12"\n'


def test_the_config_names_a_bad_witness_key_or_an_impossible_k():
    good = CosignatureSigner("witness.example/one", Ed25519PrivateKey.generate()).verifier
    config = parse_config(BASE + f'[witnesses]\nkeys = ["{good.to_string()}"]\nmin = 1\n')
    assert [v.name for v in config.witnesses.verifiers()] == ["witness.example/one"]
    assert parse_config(BASE).witnesses.min == 0
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + '[witnesses]\nkeys = ["witness.example/one+00000000+AAAA"]\n')
    assert str(caught.value) == (
        "config.toml: witnesses: keys: 'witness.example/one+00000000+AAAA': a witness key has "
        "an 8-digit key ID and type 0x04")
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + f'[witnesses]\nkeys = ["{good.to_string()}"]\nmin = 2\n')
    assert str(caught.value) == (
        "config.toml: witnesses: min = 2 needs at least 2 keys, there are 1 (or [lan] enabled, "
        "so that LAN neighbours' witnesses count)")
    # With the LAN on, neighbours' witnesses count too: k may exceed the configured keys.
    lan = '[lan]\nenabled = true\n'
    assert parse_config(BASE + lan + '[witnesses]\nmin = 2\n').witnesses.min == 2
    # Unless the owner counts only the keys they listed.
    with pytest.raises(ConfigError, match="min = 2 needs at least 2 keys, there are 0"):
        parse_config(BASE + lan + '[witnesses]\nmin = 2\nlan = false\n')
    # A hub witnesses its gateway only on its LAN server.
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + '[lan]\nwitness = true\n')
    assert str(caught.value) == (
        "config.toml: lan: witness = true serves POST /add-checkpoint on the LAN server: it "
        "needs enabled = true")
