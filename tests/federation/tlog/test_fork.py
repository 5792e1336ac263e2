"""Split views as a pure rule: two checkpoints of one log that cannot both be true."""

from __future__ import annotations

import pytest

from federation.tlog.checkpoint import Checkpoint, CheckpointError, sign_checkpoint
from federation.tlog.fork import ConsistencyNeeded, find_split_view
from federation.tlog.merkle import MemoryTree
from federation.tlog.note import NoteSigner

ORIGIN = "example.org/log"


def _tree(entries: list[bytes]) -> MemoryTree:
    tree = MemoryTree()
    for entry in entries:
        tree.append(entry)
    return tree


def test_two_checkpoints_that_cannot_both_be_true_are_a_split_view():
    key = NoteSigner.generate(ORIGIN)
    verifier = key.verifier()
    honest = _tree([b"e%d" % i for i in range(8)])
    fork = _tree([b"e0", b"e1", b"e2", b"other"] + [b"x%d" % i for i in range(4)])

    def signed(tree: MemoryTree, size: int, signer: NoteSigner = key) -> str:
        return sign_checkpoint(Checkpoint(ORIGIN, size, tree.root(size)), signer)

    assert find_split_view(verifier, signed(honest, 5), signed(honest, 5)) is None
    split = find_split_view(verifier, signed(honest, 5), signed(fork, 5))
    assert split is not None and split.why == "two different trees of size 5"
    assert (split.ours, split.theirs) == (signed(honest, 5), signed(fork, 5))

    with pytest.raises(ConsistencyNeeded) as need:
        find_split_view(verifier, signed(honest, 3), signed(honest, 8))
    assert (need.value.old_size, need.value.new_size) == (3, 8)
    # Sizes 3 and 8 of one tree: the log's proof holds. Of the fork: no proof can hold.
    assert find_split_view(verifier, signed(honest, 8), signed(honest, 3),
                           honest.consistency_proof(3, 8)) is None
    split = find_split_view(verifier, signed(honest, 3), signed(fork, 8),
                            fork.consistency_proof(3, 8))
    assert split is None  # the fork shares its first 3 entries: consistent so far
    split = find_split_view(verifier, signed(honest, 4), signed(fork, 8),
                            fork.consistency_proof(4, 8))
    assert split.why == ("the tree of size 4 is not a prefix of the tree of size 8 (the log's "
                         "own consistency proof fails)")
    # A checkpoint by another key is not evidence of anything.
    with pytest.raises(CheckpointError):
        find_split_view(verifier, signed(honest, 5), signed(fork, 5, NoteSigner.generate(ORIGIN)))
