"""RFC 9162 (section 2.1) Merkle tree hashing, inclusion proofs and consistency proofs.

Pure functions, no I/O. Proof generation asks a callable for the hash of a leaf range
``[start, end)`` (``SubtreeHash``), so a storage layer can answer from whatever it keeps, for
example tlog-tiles; ``subtree_hash`` builds such a callable from a lookup of perfect subtrees.
``MemoryTree`` is the simple in-memory reference used by tests and small logs.

Verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step, so it can be read
side by side with the RFC. Every failure is a ``ProofInvalid`` whose ``reason`` says why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from federation.errors import FederationError

HASH_SIZE = 32
# MTH({}) = SHA-256() (RFC 9162 section 2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()
# Tree sizes and indices are uint64 on the wire (checkpoints, tlog-proof, RFC 9162 structures).
MAX_TREE_SIZE = (1 << 64) - 1

SubtreeHash = Callable[[int, int], bytes]
"""Return MTH(D[start:end]) for ``0 <= start < end``."""

NodeHash = Callable[[int, int], bytes]
"""Return the hash of the perfect subtree ``(level, index)``: leaves ``[index << level, (index + 1) << level)``."""


class ProofInvalid(FederationError):
    """A Merkle inclusion or consistency proof does not prove what it claims."""

    default_reason = "proof_invalid"


def leaf_hash(entry: bytes) -> bytes:
    """Hash a log entry as a leaf: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child hashes into their parent: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    # The largest power of two smaller than n (n >= 2): RFC 9162's k.
    return 1 << ((n - 1).bit_length() - 1)


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def root(leaf_hashes: Sequence[bytes] | Iterable[bytes]) -> bytes:
    """Return the Merkle tree hash (MTH) of a list of leaf hashes."""
    # Keep the right edge as a stack of perfect subtrees of strictly decreasing height, merging
    # equal heights as leaves arrive; folding it right to left gives MTH without recursion.
    stack: list[tuple[int, bytes]] = []
    for value in leaf_hashes:
        height, digest = 0, value
        while stack and stack[-1][0] == height:
            digest = node_hash(stack.pop()[1], digest)
            height += 1
        stack.append((height, digest))
    if not stack:
        return EMPTY_ROOT
    digest = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        digest = node_hash(left, digest)
    return digest


def subtree_hash(start: int, end: int, node: NodeHash) -> bytes:
    """Return MTH(D[start:end]) built from perfect-subtree hashes given by ``node``."""
    if not 0 <= start < end:
        raise ValueError(f"empty or negative leaf range [{start}, {end})")
    n = end - start
    if _is_power_of_two(n) and start % n == 0:
        return node(n.bit_length() - 1, start // n)
    k = _split(n)
    return node_hash(subtree_hash(start, start + k, node), subtree_hash(start + k, end, node))


def inclusion_proof(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """Return the RFC 9162 inclusion path PATH(index, D[0:size]), leaf's sibling first."""
    if not 0 <= index < size <= MAX_TREE_SIZE:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    # Walk PATH's recursion from the root down, then reverse: the RFC lists the deepest
    # sibling first.
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        mid = start + _split(end - start)
        if index < mid:
            path.append(subtree(mid, end))
            end = mid
        else:
            path.append(subtree(start, mid))
            start = mid
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, subtree: SubtreeHash) -> list[bytes]:
    """Return the RFC 9162 consistency proof PROOF(old_size, D[0:new_size])."""
    if not 0 <= old_size <= new_size <= MAX_TREE_SIZE:
        raise ValueError(f"cannot prove tree size {old_size} is a prefix of size {new_size}")
    # RFC 9162 defines PROOF only for 0 < m < n; an empty tree and a tree compared with
    # itself need no proof hashes.
    if old_size in (0, new_size):
        return []
    # SUBPROOF(m, D[start:end], complete), unrolled from the root down and reversed at the end.
    path: list[bytes] = []
    m, start, end, complete = old_size, 0, new_size, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                path.append(subtree(start, end))
            break
        k = _split(n)
        if m <= k:
            path.append(subtree(start + k, end))
            end = start + k
        else:
            path.append(subtree(start, start + k))
            m -= k
            start += k
            complete = False
    path.reverse()
    return path


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofInvalid(f"{what} is not a {HASH_SIZE}-byte SHA-256 hash", reason="bad_hash")
    return bytes(value)


def _check_size(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TREE_SIZE:
        raise ProofInvalid(f"{what} must be an integer from 0 to 2^64-1", reason="bad_size")
    return value


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """Check that ``leaf`` is at ``index`` in the tree of ``size`` with ``root_hash``."""
    index = _check_size(index, "leaf index")
    size = _check_size(size, "tree size")
    r = _check_hash(leaf, "leaf hash")
    root_hash = _check_hash(root_hash, "root hash")
    path = [_check_hash(p, f"inclusion proof hash {i}") for i, p in enumerate(proof)]

    # RFC 9162 section 2.1.3.2, steps 1 to 5.
    # 1. leaf_index >= tree_size fails.
    if index >= size:
        raise ProofInvalid(
            f"leaf index {index} is outside a tree of size {size}", reason="index_out_of_range"
        )
    # 2. fn = leaf_index, sn = tree_size - 1.
    fn, sn = index, size - 1
    # 3. r = hash (already set above).
    # 4. For each p in inclusion_path:
    for p in path:
        # a. sn == 0 means the path is longer than the tree is deep.
        if sn == 0:
            raise ProofInvalid(
                f"inclusion proof for leaf {index} of {size} has too many hashes",
                reason="proof_too_long",
            )
        # b. p is a left sibling when LSB(fn) is set or fn == sn.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # ii. Skip the levels where this node has no right sibling.
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        # c. Up one level.
        fn >>= 1
        sn >>= 1
    # 5. sn must be 0 and r must equal root_hash.
    if sn != 0:
        raise ProofInvalid(
            f"inclusion proof for leaf {index} of {size} has too few hashes",
            reason="proof_too_short",
        )
    if r != root_hash:
        raise ProofInvalid(
            f"inclusion proof for leaf {index} of {size} leads to a different root hash",
            reason="root_mismatch",
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` is a prefix of the tree of ``new_size``."""
    first = _check_size(old_size, "old tree size")
    second = _check_size(new_size, "new tree size")
    first_hash = _check_hash(old_root, "old root hash")
    second_hash = _check_hash(new_root, "new root hash")
    path = [_check_hash(c, f"consistency proof hash {i}") for i, c in enumerate(proof)]

    if first > second:
        raise ProofInvalid(
            f"tree size went backwards from {first} to {second}", reason="size_decreased"
        )
    # RFC 9162 section 2.1.4.2 covers 0 < first < second; the two edge cases need no hashes.
    if first == second:
        if path:
            raise ProofInvalid(
                "a tree is consistent with itself without proof hashes", reason="proof_too_long"
            )
        if first_hash != second_hash:
            raise ProofInvalid(
                f"two different root hashes for the same tree size {first}: the log forked",
                reason="root_mismatch",
            )
        return
    if first == 0:
        if path:
            raise ProofInvalid(
                "the empty tree is a prefix of every tree without proof hashes",
                reason="proof_too_long",
            )
        if first_hash != EMPTY_ROOT:
            raise ProofInvalid(
                "the root hash of an empty tree must be SHA-256 of nothing", reason="root_mismatch"
            )
        return

    # 1. An empty consistency_path fails.
    if not path:
        raise ProofInvalid(
            f"consistency proof from {first} to {second} is empty", reason="proof_too_short"
        )
    # 2. If first is an exact power of 2, prepend first_hash.
    if _is_power_of_two(first):
        path.insert(0, first_hash)
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = first - 1, second - 1
    # 4. While LSB(fn) is set, right-shift fn and sn.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = the first value of the path.
    fr = sr = path[0]
    # 6. For each subsequent value c:
    for c in path[1:]:
        # a. sn == 0 means the path is longer than the new tree is deep.
        if sn == 0:
            raise ProofInvalid(
                f"consistency proof from {first} to {second} has too many hashes",
                reason="proof_too_long",
            )
        # b. c is a left sibling of both paths when LSB(fn) is set or fn == sn.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # ii. Skip the levels where the old tree's edge has no right sibling.
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            # Otherwise c only extends the new tree, to the right.
            sr = node_hash(sr, c)
        # c. Up one level.
        fn >>= 1
        sn >>= 1
    # 7. fr == first_hash, sr == second_hash and sn == 0.
    if sn != 0:
        raise ProofInvalid(
            f"consistency proof from {first} to {second} has too few hashes",
            reason="proof_too_short",
        )
    if fr != first_hash:
        raise ProofInvalid(
            f"consistency proof does not lead to the old root hash at size {first}",
            reason="old_root_mismatch",
        )
    if sr != second_hash:
        raise ProofInvalid(
            f"consistency proof does not lead to the new root hash at size {second}",
            reason="new_root_mismatch",
        )


class MemoryTree:
    """An in-memory Merkle tree that keeps every node, for tests and small logs."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        # _levels[h][i] is the perfect subtree (h, i); each level is filled left to right.
        self._levels: list[list[bytes]] = [[]]
        for value in leaf_hashes:
            self.append_leaf_hash(value)

    @classmethod
    def from_entries(cls, entries: Iterable[bytes]) -> MemoryTree:
        """Build a tree whose leaves are the hashes of these entries."""
        return cls(leaf_hash(entry) for entry in entries)

    @property
    def size(self) -> int:
        """Return the number of leaves."""
        return len(self._levels[0])

    def append(self, entry: bytes) -> int:
        """Append an entry and return its leaf index."""
        return self.append_leaf_hash(leaf_hash(entry))

    def append_leaf_hash(self, value: bytes) -> int:
        """Append a leaf hash and return its leaf index."""
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes")
        index = self.size
        height = 0
        self._levels[0].append(value)
        # Each completed pair makes one new parent, so an append costs O(1) amortised.
        while len(self._levels[height]) % 2 == 0:
            level = self._levels[height]
            if height + 1 == len(self._levels):
                self._levels.append([])
            self._levels[height + 1].append(node_hash(level[-2], level[-1]))
            height += 1
        return index

    def node(self, level: int, index: int) -> bytes:
        """Return the hash of the perfect subtree ``(level, index)``."""
        if not 0 <= level < len(self._levels) or not 0 <= index < len(self._levels[level]):
            raise ValueError(f"no complete subtree ({level}, {index}) in a tree of {self.size}")
        return self._levels[level][index]

    def leaf_hash(self, index: int) -> bytes:
        """Return the hash of leaf ``index``."""
        return self.node(0, index)

    def subtree_hash(self, start: int, end: int) -> bytes:
        """Return MTH(D[start:end])."""
        if end > self.size:
            raise ValueError(f"leaf range [{start}, {end}) is beyond tree size {self.size}")
        return subtree_hash(start, end, self.node)

    def root(self, size: int | None = None) -> bytes:
        """Return the root hash of the tree at ``size`` leaves (default: all)."""
        size = self.size if size is None else size
        if size == 0:
            return EMPTY_ROOT
        return self.subtree_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the inclusion proof of leaf ``index`` in the tree at ``size``."""
        size = self.size if size is None else size
        if size > self.size:
            raise ValueError(f"tree size {size} is beyond the {self.size} leaves held")
        return inclusion_proof(index, size, self.subtree_hash)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Return the consistency proof from ``old_size`` to ``new_size`` (default: all)."""
        new_size = self.size if new_size is None else new_size
        if new_size > self.size:
            raise ValueError(f"tree size {new_size} is beyond the {self.size} leaves held")
        return consistency_proof(old_size, new_size, self.subtree_hash)
