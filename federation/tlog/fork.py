"""Split views: two validly signed checkpoints of one log that cannot both be true.

A log shown to two readers as two different trees is caught when the readers compare their
latest checkpoints (gossip). Both must open with the log's key. At one size, two roots are a
fork outright. At two sizes, the log must prove the smaller tree a prefix of the larger
(RFC 9162 consistency): an honest log always can, so a proof that fails is a fork too. The two
signed notes are the evidence, checkable by anyone who holds the log's key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from federation.errors import FederationError
from federation.tlog.checkpoint import Checkpoint, open_checkpoint
from federation.tlog.merkle import verify_consistency
from federation.tlog.note import NoteVerifier


class ConsistencyNeeded(FederationError):
    """The checkpoints differ in size: a consistency proof between the sizes is needed."""

    default_reason = "consistency_proof_required"

    def __init__(self, old_size: int, new_size: int) -> None:
        super().__init__(f"a consistency proof from size {old_size} to {new_size} is needed")
        self.old_size = old_size
        self.new_size = new_size


@dataclass(frozen=True)
class SplitView:
    """Two signed checkpoints of one log that cannot both be true, and why."""

    ours: str
    theirs: str
    why: str


def find_split_view(
    verifier: NoteVerifier,
    ours: str,
    theirs: str,
    consistency_proof: Sequence[bytes] | None = None,
) -> SplitView | None:
    """Return the split view two checkpoints of one log show, or None if they agree.

    Raises CheckpointError when either is not a checkpoint signed by the log's key, and
    ConsistencyNeeded when the sizes differ and no proof is given.
    """
    mine = open_checkpoint(ours, verifier, origin=verifier.name)
    other = open_checkpoint(theirs, verifier, origin=verifier.name)
    if mine.size == other.size:
        if mine.root_hash == other.root_hash:
            return None
        return SplitView(ours, theirs, f"two different trees of size {mine.size}")
    small, large = sorted((mine, other), key=lambda c: c.size)
    if consistency_proof is None:
        raise ConsistencyNeeded(small.size, large.size)
    if _consistent(small, large, consistency_proof):
        return None
    return SplitView(
        ours,
        theirs,
        f"the tree of size {small.size} is not a prefix of the tree of size {large.size} "
        "(the log's own consistency proof fails)",
    )


def _consistent(small: Checkpoint, large: Checkpoint, proof: Sequence[bytes]) -> bool:
    try:
        verify_consistency(small.size, large.size, small.root_hash, large.root_hash, list(proof))
    except FederationError:  # ProofInvalid, or a proof of the wrong shape
        return False
    return True
