"""C2SP tlog-proof bundles (https://c2sp.org/tlog-proof): offline proof that an entry is logged.

A bundle is text: the line ``c2sp.org/tlog-proof@v1``, an optional ``extra <base64>`` line, the
line ``index <N>``, the inclusion proof hashes in base64 one a line (leaf's sibling first), an
empty line, and the log's signed checkpoint verbatim. It travels with every relayed agency
request so a hub can check, without asking anyone, that the request is in the public log; a
hub that remembers the last checkpoint it saw also demands a consistency proof, so the log
cannot show it a fork.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from federation.errors import FederationError
from federation.tlog.checkpoint import (
    Checkpoint,
    CheckpointMalformed,
    CheckpointUnverified,
    open_checkpoint,
)
from federation.tlog.merkle import (
    HASH_SIZE,
    MAX_TREE_SIZE,
    ProofInvalid,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from federation.tlog.note import MAX_NOTE_BYTES, NoteVerifier

HEADER = "c2sp.org/tlog-proof@v1"
# A tree of at most 2^64-1 leaves is at most 64 levels deep.
MAX_PROOF_HASHES = 64
MAX_BUNDLE_BYTES = MAX_NOTE_BYTES + 16 * 1024

_INDEX_PATTERN = re.compile(r"0|[1-9][0-9]{0,19}")


class TlogProofError(FederationError):
    """Base of every tlog-proof failure."""

    default_reason = "tlog_proof_error"


class TlogProofMalformed(TlogProofError):
    """The bundle is not a well-formed tlog-proof."""

    default_reason = "tlog_proof_malformed"


class TlogProofUnverified(TlogProofError):
    """The bundle's checkpoint is not signed by the log's trusted key."""

    default_reason = "tlog_proof_unverified"


class TlogProofNotIncluded(TlogProofError):
    """The inclusion proof does not put this entry in the checkpointed tree."""

    default_reason = "tlog_proof_not_included"


class TlogProofInconsistent(TlogProofError):
    """The checkpoint cannot be shown consistent with the last one seen: the log may have forked."""

    default_reason = "tlog_proof_inconsistent"


def _b64decode(text: str) -> bytes:
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return raw


@dataclass(frozen=True)
class TlogProof:
    """A parsed tlog-proof: entry index, inclusion proof, signed checkpoint and extra data."""

    index: int
    inclusion_proof: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inclusion_proof", tuple(self.inclusion_proof))
        if not isinstance(self.index, int) or not 0 <= self.index <= MAX_TREE_SIZE:
            raise TlogProofMalformed("tlog-proof index must be an integer from 0 to 2^64-1")
        if len(self.inclusion_proof) > MAX_PROOF_HASHES:
            raise TlogProofMalformed(f"tlog-proof holds more than {MAX_PROOF_HASHES} hashes")
        for value in self.inclusion_proof:
            if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                raise TlogProofMalformed(f"tlog-proof hashes must be {HASH_SIZE} bytes")
        if not isinstance(self.checkpoint, str) or not self.checkpoint.endswith("\n"):
            raise TlogProofMalformed("tlog-proof checkpoint must be a signed note text")
        if self.extra is not None and not isinstance(self.extra, bytes):
            raise TlogProofMalformed("tlog-proof extra data must be bytes")

    def to_text(self) -> str:
        """Return the bundle text."""
        lines = [HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode("ascii"))
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(value).decode("ascii") for value in self.inclusion_proof)
        return "".join(line + "\n" for line in lines) + "\n" + self.checkpoint


def format_tlog_proof(
    index: int,
    inclusion_proof: Sequence[bytes],
    signed_checkpoint: str,
    *,
    extra: bytes | None = None,
) -> str:
    """Return the tlog-proof bundle for an entry index, its inclusion proof and checkpoint."""
    return TlogProof(index, tuple(inclusion_proof), signed_checkpoint, extra).to_text()


def parse_tlog_proof(bundle: bytes | str) -> TlogProof:
    """Parse a tlog-proof bundle; the checkpoint is kept verbatim and checked on verify."""
    if isinstance(bundle, bytes | bytearray):
        if len(bundle) > MAX_BUNDLE_BYTES:
            raise TlogProofMalformed(f"tlog-proof exceeds {MAX_BUNDLE_BYTES} bytes")
        try:
            text = bytes(bundle).decode("utf-8")
        except UnicodeDecodeError as err:
            raise TlogProofMalformed("tlog-proof is not UTF-8") from err
    elif isinstance(bundle, str):
        if len(bundle) > MAX_BUNDLE_BYTES:
            raise TlogProofMalformed(f"tlog-proof exceeds {MAX_BUNDLE_BYTES} bytes")
        text = bundle
    else:
        raise TlogProofMalformed("a tlog-proof is bytes or a string")

    pos = 0

    def next_line() -> str:
        # Lines end in a newline; running out of them before the checkpoint is malformed.
        nonlocal pos
        end = text.find("\n", pos)
        if end < 0:
            raise TlogProofMalformed("tlog-proof ends before its checkpoint")
        line = text[pos:end]
        pos = end + 1
        return line

    if next_line() != HEADER:
        raise TlogProofMalformed(f"tlog-proof must start with the line {HEADER}")
    line = next_line()
    extra = None
    if line.startswith("extra "):
        try:
            extra = _b64decode(line.removeprefix("extra "))
        except (binascii.Error, UnicodeEncodeError, ValueError) as err:
            raise TlogProofMalformed("tlog-proof extra data is not canonical base64") from err
        line = next_line()
    index_text = line.removeprefix("index ")
    if not line.startswith("index ") or not _INDEX_PATTERN.fullmatch(index_text):
        raise TlogProofMalformed(
            "tlog-proof needs a line 'index <N>' in decimal without leading zeros"
        )
    index = int(index_text)
    if index > MAX_TREE_SIZE:
        raise TlogProofMalformed("tlog-proof index exceeds 2^64-1")
    hashes: list[bytes] = []
    while (line := next_line()) != "":
        if len(hashes) == MAX_PROOF_HASHES:
            raise TlogProofMalformed(f"tlog-proof holds more than {MAX_PROOF_HASHES} hashes")
        try:
            value = _b64decode(line)
        except (binascii.Error, UnicodeEncodeError, ValueError) as err:
            raise TlogProofMalformed("tlog-proof hash line is not canonical base64") from err
        if len(value) != HASH_SIZE:
            raise TlogProofMalformed(f"tlog-proof hash is {len(value)} bytes, not {HASH_SIZE}")
        hashes.append(value)
    checkpoint = text[pos:]
    if not checkpoint or not checkpoint.endswith("\n"):
        raise TlogProofMalformed("tlog-proof must end with the log's signed checkpoint")
    return TlogProof(index=index, inclusion_proof=tuple(hashes), checkpoint=checkpoint, extra=extra)


@dataclass(frozen=True)
class VerifiedTlogProof:
    """A bundle that verified: where the entry is, and the checkpoint that proves it.

    Remember ``signed_checkpoint`` as the last seen checkpoint when ``newer_than_last_seen``.
    """

    index: int
    checkpoint: Checkpoint
    signed_checkpoint: str
    extra: bytes | None
    newer_than_last_seen: bool


def _open(signed: str | bytes, verifier: NoteVerifier, origin: str, what: str) -> Checkpoint:
    try:
        return open_checkpoint(signed, verifier, origin=origin)
    except CheckpointMalformed as err:
        raise TlogProofMalformed(f"{what} is malformed: {err}") from err
    except CheckpointUnverified as err:
        raise TlogProofUnverified(
            f"{what} is not signed by the log's key: {err}", reason=err.reason
        ) from err


def verify_tlog_proof(
    entry_bytes: bytes,
    bundle: bytes | str | TlogProof,
    verifier_key: NoteVerifier | str,
    last_seen_checkpoint: Checkpoint | str | bytes | None = None,
    consistency_proof: Sequence[bytes] | None = None,
    *,
    origin: str | None = None,
) -> VerifiedTlogProof:
    """Check that ``entry_bytes`` is in the log and consistent with the last checkpoint seen."""
    # origin defaults to the verifier key's name. last_seen_checkpoint is a Checkpoint the
    # caller already verified, or a signed note to verify with the same key. When the sizes
    # differ, consistency_proof must prove the smaller tree a prefix of the larger one.
    if not isinstance(entry_bytes, bytes | bytearray):
        raise TypeError("entry_bytes must be the exact bytes that were logged")
    verifier = (
        verifier_key
        if isinstance(verifier_key, NoteVerifier)
        else NoteVerifier.from_string(verifier_key)
    )
    origin = verifier.name if origin is None else origin
    proof = bundle if isinstance(bundle, TlogProof) else parse_tlog_proof(bundle)

    checkpoint = _open(proof.checkpoint, verifier, origin, "the bundle's checkpoint")
    try:
        verify_inclusion(
            proof.index,
            checkpoint.size,
            leaf_hash(bytes(entry_bytes)),
            proof.inclusion_proof,
            checkpoint.root_hash,
        )
    except ProofInvalid as err:
        raise TlogProofNotIncluded(
            f"entry is not at index {proof.index} of the log at size {checkpoint.size}: {err}",
            reason=err.reason,
        ) from err

    newer = True
    if last_seen_checkpoint is not None:
        last = (
            last_seen_checkpoint
            if isinstance(last_seen_checkpoint, Checkpoint)
            else _open(last_seen_checkpoint, verifier, origin, "the last seen checkpoint")
        )
        if last.origin != checkpoint.origin:
            raise TlogProofInconsistent(
                f"last seen checkpoint is for log {last.origin!r}, not {checkpoint.origin!r}",
                reason="wrong_origin",
            )
        if last.size != checkpoint.size and consistency_proof is None:
            raise TlogProofInconsistent(
                f"a consistency proof between tree sizes {last.size} and {checkpoint.size} "
                "is required; ask the gateway for one",
                reason="consistency_proof_required",
            )
        # The bundle may be older than what this hub has already seen; prove the smaller tree
        # a prefix of the larger either way.
        small, large = sorted((last, checkpoint), key=lambda cp: cp.size)
        try:
            verify_consistency(
                small.size,
                large.size,
                small.root_hash,
                large.root_hash,
                list(consistency_proof or ()),
            )
        except ProofInvalid as err:
            raise TlogProofInconsistent(
                f"log at size {checkpoint.size} is not consistent with the last seen size "
                f"{last.size}: {err}",
                reason=err.reason,
            ) from err
        newer = checkpoint.size > last.size
    return VerifiedTlogProof(
        index=proof.index,
        checkpoint=checkpoint,
        signed_checkpoint=proof.checkpoint,
        extra=proof.extra,
        newer_than_last_seen=newer,
    )
