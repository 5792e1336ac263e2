"""C2SP tlog-checkpoint: format, parse, sign and open."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.tlog.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointMalformed,
    CheckpointUnverified,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from federation.tlog.merkle import EMPTY_ROOT
from federation.tlog.note import NoteSigner, parse_note

# The example checkpoint of the C2SP tlog-checkpoint specification (c2sp.org/tlog-checkpoint);
# the spec does not publish its public key, so only its structure can be checked.
C2SP_EXAMPLE = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)
ROOT = bytes(range(32))
LOG = NoteSigner.generate("log.porchlight.example")


def test_c2sp_spec_example_parses() -> None:
    text, (signature,) = parse_note(C2SP_EXAMPLE)
    checkpoint = parse_checkpoint(text)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert checkpoint.to_text() == text
    assert (signature.name, signature.key_id) == ("example.com/behind-the-sofa", 0x033DE0AE)


def test_format_is_three_lines_and_extensions() -> None:
    checkpoint = Checkpoint("log.example", 5, ROOT, ("ext one", "ext two"))
    root64 = base64.b64encode(ROOT).decode()
    assert checkpoint.to_text() == f"log.example\n5\n{root64}\next one\next two\n"
    assert parse_checkpoint(checkpoint.to_text()) == checkpoint


def test_sign_and_open_round_trip() -> None:
    checkpoint = Checkpoint(LOG.name, 1234, ROOT)
    signed = sign_checkpoint(checkpoint, LOG)
    assert open_checkpoint(signed, LOG.verifier()) == checkpoint
    assert open_checkpoint(signed.encode(), [LOG.verifier()], origin=LOG.name) == checkpoint


def test_empty_tree_checkpoint() -> None:
    signed = sign_checkpoint(Checkpoint(LOG.name, 0, EMPTY_ROOT), LOG)
    assert open_checkpoint(signed, LOG.verifier()).size == 0


def test_wrong_origin_is_rejected() -> None:
    signed = sign_checkpoint(Checkpoint(LOG.name, 1, ROOT), LOG)
    with pytest.raises(CheckpointUnverified) as err:
        open_checkpoint(signed, LOG.verifier(), origin="other.example")
    assert err.value.reason == "checkpoint_wrong_origin"


def test_key_name_must_match_origin_unless_origin_is_given() -> None:
    # A key vouching for a checkpoint of another origin proves nothing by default.
    signed = sign_checkpoint(Checkpoint("someone-else.example", 1, ROOT), LOG)
    with pytest.raises(CheckpointUnverified):
        open_checkpoint(signed, LOG.verifier())
    assert open_checkpoint(signed, LOG.verifier(), origin="someone-else.example").size == 1


def test_unknown_key_and_tampering_are_unverified() -> None:
    signed = sign_checkpoint(Checkpoint(LOG.name, 7, ROOT), LOG)
    with pytest.raises(CheckpointUnverified) as err:
        open_checkpoint(signed, NoteSigner.generate(LOG.name).verifier())
    assert err.value.reason == "note_unverified"
    with pytest.raises(CheckpointUnverified) as err:
        open_checkpoint(signed.replace("\n7\n", "\n8\n"), LOG.verifier())
    assert err.value.reason == "note_bad_signature"


def test_malformed_note_is_checkpoint_malformed() -> None:
    with pytest.raises(CheckpointMalformed):
        open_checkpoint("not a note", LOG.verifier())


ROOT64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "log\n",
        f"log\n5\n{ROOT64}",  # no final newline
        "log\n5\n",
        f"\n5\n{ROOT64}\n",  # empty origin
        f"log\n05\n{ROOT64}\n",  # leading zero
        f"log\n-5\n{ROOT64}\n",
        f"log\n+5\n{ROOT64}\n",
        f"log\n 5\n{ROOT64}\n",
        f"log\n٥\n{ROOT64}\n",  # a non-ASCII digit
        f"log\n18446744073709551616\n{ROOT64}\n",  # 2^64
        f"log\n{'9' * 5000}\n{ROOT64}\n",
        "log\n5\nAAAA\n",  # 3-byte root
        f"log\n5\n{ROOT64[:-1]}\n",
        f"log\n5\n{ROOT64[:-2]}Z=\n",  # non-canonical trailing bits
        f"log\n5\n{ROOT64}\n\n",  # empty extension line
        f"log\n5\n{ROOT64}\next\n\n",
        f"lo\tg\n5\n{ROOT64}\n",
        f"\ud800\n5\n{ROOT64}\n",
    ],
)
def test_malformed_checkpoint_texts(text: str) -> None:
    with pytest.raises(CheckpointMalformed):
        parse_checkpoint(text)


def test_largest_tree_size_parses() -> None:
    text = f"log\n18446744073709551615\n{ROOT64}\n"
    assert parse_checkpoint(text).size == 2**64 - 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": "", "size": 1, "root_hash": ROOT},
        {"origin": "a\nb", "size": 1, "root_hash": ROOT},
        {"origin": "log", "size": -1, "root_hash": ROOT},
        {"origin": "log", "size": 2**64, "root_hash": ROOT},
        {"origin": "log", "size": 1, "root_hash": ROOT[:31]},
        {"origin": "log", "size": 1, "root_hash": ROOT, "extensions": ("",)},
    ],
)
def test_checkpoint_fields_are_validated(kwargs: dict) -> None:
    with pytest.raises(CheckpointMalformed):
        Checkpoint(**kwargs)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="0123456789\n=+/AQgw log-")))
def test_parsing_arbitrary_text_raises_only_checkpoint_errors(text: str) -> None:
    try:
        checkpoint = parse_checkpoint(text)
    except CheckpointMalformed:
        return
    assert parse_checkpoint(checkpoint.to_text()) == checkpoint


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_opening_arbitrary_input_raises_only_checkpoint_errors(message: str | bytes) -> None:
    with pytest.raises(CheckpointError):
        open_checkpoint(message, LOG.verifier())


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(0, 2**64 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(st.text(alphabet="abc xyz=-", min_size=1, max_size=10), max_size=3),
)
def test_any_checkpoint_round_trips(size: int, root_hash: bytes, extensions: list[str]) -> None:
    checkpoint = Checkpoint(LOG.name, size, root_hash, tuple(extensions))
    assert open_checkpoint(sign_checkpoint(checkpoint, LOG), LOG.verifier()) == checkpoint
