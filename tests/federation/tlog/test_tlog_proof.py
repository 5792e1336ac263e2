"""C2SP tlog-proof bundles: format, parse, and offline verification with consistency."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.tlog.checkpoint import Checkpoint, sign_checkpoint
from federation.tlog.merkle import MemoryTree
from federation.tlog.note import NoteKeyInvalid, NoteSigner
from federation.tlog.proof import (
    HEADER,
    TlogProof,
    TlogProofError,
    TlogProofInconsistent,
    TlogProofMalformed,
    TlogProofNotIncluded,
    TlogProofUnverified,
    format_tlog_proof,
    parse_tlog_proof,
    verify_tlog_proof,
)

# The example of the C2SP tlog-proof specification (c2sp.org/tlog-proof). Its signatures are
# elided with "[...]" in the spec, so it parses as a bundle but its checkpoint cannot open.
C2SP_EXAMPLE = """c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

— example.com/fancylog hI2DJw[...]1roloI=
— witness1.example mJirIklj[...]qY9v2B/5bg==
— witness2.example TnKKVHLX[...]xwYwrSjgow==
— witness3.example S4X82uH5[...]3oEcROGLFQ==
"""

LOG = NoteSigner.generate("log.porchlight.example")
ENTRIES = [f"eyJhbGciOiJFZDI1NTE5In0.request-{i}.sig".encode() for i in range(40)]
TREE = MemoryTree.from_entries(ENTRIES)


def signed_at(size: int, signer: NoteSigner = LOG, tree: MemoryTree = TREE) -> str:
    return sign_checkpoint(Checkpoint(signer.name, size, tree.root(size)), signer)


def bundle(index: int, size: int, **kwargs) -> str:
    return format_tlog_proof(index, TREE.inclusion_proof(index, size), signed_at(size), **kwargs)


def test_c2sp_spec_example_parses() -> None:
    proof = parse_tlog_proof(C2SP_EXAMPLE)
    assert proof.index == 73894
    assert len(proof.inclusion_proof) == 5
    assert proof.inclusion_proof[0] == base64.b64decode(
        "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ="
    )
    assert proof.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert proof.checkpoint.startswith("example.com/fancylog\n109482\n")
    assert proof.to_text() == C2SP_EXAMPLE
    with pytest.raises(TlogProofMalformed):
        verify_tlog_proof(
            b"x", C2SP_EXAMPLE, NoteSigner.generate("example.com/fancylog").verifier()
        )


def test_format_matches_the_spec_layout() -> None:
    text = bundle(3, 8, extra=b"context")
    lines = text.split("\n")
    assert lines[0] == HEADER
    assert lines[1] == "extra " + base64.b64encode(b"context").decode()
    assert lines[2] == "index 3"
    assert [base64.b64decode(line) for line in lines[3:6]] == TREE.inclusion_proof(3, 8)
    assert lines[6] == ""
    assert text.endswith(signed_at(8))
    assert parse_tlog_proof(text) == TlogProof(
        3, TREE.inclusion_proof(3, 8), signed_at(8), b"context"
    )


def test_bundle_verifies_offline() -> None:
    result = verify_tlog_proof(ENTRIES[17], bundle(17, 30), LOG.verifier())
    assert (result.index, result.checkpoint.size) == (17, 30)
    assert result.signed_checkpoint == signed_at(30)
    assert result.extra is None and result.newer_than_last_seen


def test_verifier_key_may_be_the_key_string() -> None:
    result = verify_tlog_proof(ENTRIES[0], bundle(0, 1), LOG.verifier().to_string())
    assert result.checkpoint.size == 1


def test_a_different_entry_is_not_included() -> None:
    with pytest.raises(TlogProofNotIncluded):
        verify_tlog_proof(ENTRIES[18], bundle(17, 30), LOG.verifier())
    with pytest.raises(TlogProofNotIncluded):
        verify_tlog_proof(ENTRIES[17] + b" ", bundle(17, 30), LOG.verifier())


def test_a_tampered_proof_is_not_included() -> None:
    proof = TREE.inclusion_proof(17, 30)
    proof[1] = bytes(32)
    with pytest.raises(TlogProofNotIncluded):
        verify_tlog_proof(ENTRIES[17], format_tlog_proof(17, proof, signed_at(30)), LOG.verifier())
    moved = format_tlog_proof(16, TREE.inclusion_proof(17, 30), signed_at(30))
    with pytest.raises(TlogProofNotIncluded):
        verify_tlog_proof(ENTRIES[17], moved, LOG.verifier())


def test_a_checkpoint_from_another_key_or_log_is_unverified() -> None:
    impostor = NoteSigner.generate(LOG.name)
    forged = format_tlog_proof(17, TREE.inclusion_proof(17, 30), signed_at(30, signer=impostor))
    with pytest.raises(TlogProofUnverified):
        verify_tlog_proof(ENTRIES[17], forged, LOG.verifier())
    with pytest.raises(TlogProofUnverified):
        verify_tlog_proof(ENTRIES[17], bundle(17, 30), LOG.verifier(), origin="other.example")


def test_consistency_with_the_last_seen_checkpoint() -> None:
    last = signed_at(20)
    result = verify_tlog_proof(
        ENTRIES[25], bundle(25, 30), LOG.verifier(), last, TREE.consistency_proof(20, 30)
    )
    assert result.newer_than_last_seen
    # The same, with the last seen checkpoint already opened by the caller.
    last_cp = Checkpoint(LOG.name, 20, TREE.root(20))
    verify_tlog_proof(
        ENTRIES[25], bundle(25, 30), LOG.verifier(), last_cp, TREE.consistency_proof(20, 30)
    )


def test_a_bundle_older_than_the_last_seen_checkpoint() -> None:
    result = verify_tlog_proof(
        ENTRIES[5], bundle(5, 20), LOG.verifier(), signed_at(30), TREE.consistency_proof(20, 30)
    )
    assert not result.newer_than_last_seen


def test_same_size_needs_no_consistency_proof() -> None:
    result = verify_tlog_proof(ENTRIES[5], bundle(5, 30), LOG.verifier(), signed_at(30))
    assert not result.newer_than_last_seen


def test_a_missing_consistency_proof_is_refused() -> None:
    with pytest.raises(TlogProofInconsistent) as err:
        verify_tlog_proof(ENTRIES[25], bundle(25, 30), LOG.verifier(), signed_at(20))
    assert err.value.reason == "consistency_proof_required"


def test_a_forked_log_is_detected() -> None:
    # The log signs a second history that differs from what this hub saw at size 20.
    fork = MemoryTree.from_entries([*ENTRIES[:10], b"rewritten", *ENTRIES[11:]])
    seen = signed_at(20, tree=fork)
    with pytest.raises(TlogProofInconsistent):
        verify_tlog_proof(
            ENTRIES[25], bundle(25, 30), LOG.verifier(), seen, TREE.consistency_proof(20, 30)
        )
    with pytest.raises(TlogProofInconsistent):
        verify_tlog_proof(ENTRIES[5], bundle(5, 20), LOG.verifier(), seen, [])
    with pytest.raises(TlogProofInconsistent):
        verify_tlog_proof(
            ENTRIES[25],
            bundle(25, 30),
            LOG.verifier(),
            signed_at(20),
            fork.consistency_proof(20, 30),
        )


def test_last_seen_checkpoint_of_another_log_is_refused() -> None:
    other = Checkpoint("other.example", 20, TREE.root(20))
    with pytest.raises(TlogProofInconsistent):
        verify_tlog_proof(
            ENTRIES[25], bundle(25, 30), LOG.verifier(), other, TREE.consistency_proof(20, 30)
        )


def test_an_unsigned_last_seen_checkpoint_is_refused() -> None:
    with pytest.raises(TlogProofUnverified):
        verify_tlog_proof(
            ENTRIES[25],
            bundle(25, 30),
            LOG.verifier(),
            sign_checkpoint(Checkpoint(LOG.name, 20, TREE.root(20)), NoteSigner.generate(LOG.name)),
            TREE.consistency_proof(20, 30),
        )


def test_bad_verifier_key_string_is_a_key_error() -> None:
    with pytest.raises(NoteKeyInvalid):
        verify_tlog_proof(ENTRIES[0], bundle(0, 1), "not a key")


@pytest.mark.parametrize(
    "text",
    [
        # transparency-dev/merkle proof/tlog_proof_test.go TestVerifyTLogProofErrors.
        "wrong-header\nindex 0\n\ncheckpoint\n",
        "c2sp.org/tlog-proof@v1\nextra !!notbase64!!\nindex 0\n\ncheckpoint\n",
        "c2sp.org/tlog-proof@v1\n\n\ncheckpoint\n",
        "c2sp.org/tlog-proof@v1\nindex notanumber\n\ncheckpoint\n",
        "c2sp.org/tlog-proof@v1\nindex -5\n\ncheckpoint\n",
        "c2sp.org/tlog-proof@v1\nindex 0\n!!notbase64!!\n\ncheckpoint\n",
        "c2sp.org/tlog-proof@v1\nindex 0\n"
        + base64.b64encode(bytes(64)).decode()
        + "\n\ncheckpoint\n",
        # And a few more.
        "",
        "c2sp.org/tlog-proof@v1\n",
        "c2sp.org/tlog-proof@v1\nindex 01\n\ncheckpoint\n",
        "c2sp.org/tlog-proof@v1\nindex 18446744073709551616\n\ncheckpoint\n",
        "c2sp.org/tlog-proof@v1\nindex 0\n\n",
        "c2sp.org/tlog-proof@v1\nindex 0\n\ncheckpoint",
        "c2sp.org/tlog-proof@v1\nindex 0\n"
        + (base64.b64encode(bytes(32)).decode() + "\n") * 65
        + "\ncheckpoint\n",
        "c2sp.org/tlog-proof@v2\nindex 0\n\ncheckpoint\n",
        "c2sp.org/tlog-proof@v1\r\nindex 0\n\ncheckpoint\n",
    ],
)
def test_malformed_bundles(text: str) -> None:
    with pytest.raises(TlogProofMalformed):
        parse_tlog_proof(text)
    with pytest.raises(TlogProofMalformed):
        verify_tlog_proof(b"x", text, LOG.verifier())


def test_non_utf8_bundle_is_malformed() -> None:
    with pytest.raises(TlogProofMalformed):
        parse_tlog_proof(b"\xffc2sp.org/tlog-proof@v1\n")


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.text(), st.binary(), st.text(alphabet="c2sp.org/tlog-proof@v1\nindex 0extra AQ="))
)
def test_parsing_arbitrary_input_raises_only_tlog_proof_errors(text: str | bytes) -> None:
    try:
        proof = parse_tlog_proof(text)
    except TlogProofMalformed:
        return
    assert parse_tlog_proof(proof.to_text()) == proof


VALID = bundle(17, 30)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID)), st.integers(0, 3), st.text(max_size=3)),
        min_size=1,
        max_size=3,
    )
)
def test_mutated_bundles_fail_with_typed_errors_or_still_prove_the_entry(
    edits: list[tuple[int, int, str]],
) -> None:
    text = VALID
    for at, cut, insert in edits:
        text = text[:at] + insert + text[at + cut :]
    try:
        result = verify_tlog_proof(ENTRIES[17], text, LOG.verifier())
    except TlogProofError:
        return
    assert (result.index, result.checkpoint.size) == (17, 30)
