"""RFC 9162 Merkle tree: reference vectors, the RFC's worked example, and proof properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.tlog.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    ProofInvalid,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# Test vectors transcribed from transparency-dev/merkle, proof/verify_test.go (the reference
# tree of RFC 6962 / RFC 9162 hashing used across Certificate Transparency implementations).
LEAVES = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]
ROOTS = [  # ROOTS[n - 1] is the root of the tree of the first n leaves.
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
# (leaf index, tree size, proof); the Go file numbers leaves from 1, these from 0.
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]
# (old size, new size, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")

REFERENCE = MemoryTree.from_entries(LEAVES)


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert root([]) == EMPTY_ROOT
    assert MemoryTree().root() == EMPTY_ROOT


def test_leaf_and_node_hashes_use_rfc_domain_separation() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert (
        node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    )


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_roots(size: int) -> None:
    assert root([leaf_hash(leaf) for leaf in LEAVES[:size]]) == ROOTS[size - 1]
    assert REFERENCE.root(size) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_reference_inclusion_proofs_generate_and_verify(
    index: int, size: int, proof: list[bytes]
) -> None:
    assert REFERENCE.inclusion_proof(index, size) == proof
    verify_inclusion(index, size, leaf_hash(LEAVES[index]), proof, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_reference_consistency_proofs_generate_and_verify(
    old: int, new: int, proof: list[bytes]
) -> None:
    assert REFERENCE.consistency_proof(old, new) == proof
    verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


def _inclusion_probes(index: int, size: int, proof: list[bytes], root_hash: bytes, leaf: bytes):
    # The corruptions transparency-dev/merkle's verify_test.go applies to every vector.
    probes = [
        (index - 1, size, root_hash, leaf, proof),
        (index + 1, size, root_hash, leaf, proof),
        (index ^ 2, size, root_hash, leaf, proof),
        (index, size * 2, root_hash, leaf, proof),
        (index, size // 2, root_hash, leaf, proof),
        (index, size, root_hash, b"WrongLeaf", proof),
        (index, size, EMPTY_ROOT, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, root_hash, leaf, [*proof, b""]),
        (index, size, root_hash, leaf, [*proof, root_hash]),
        (index, size, root_hash, leaf, [b"", *proof]),
        (index, size, root_hash, leaf, [root_hash, *proof]),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([proof[i][0] ^ 8]) + proof[i][1:]
        probes.append((index, size, root_hash, leaf, flipped))
    if proof:
        probes.append((index, size, root_hash, leaf, proof[:-1]))
    if len(proof) > 1:
        probes.append((index, size, root_hash, leaf, [proof[0], SOME_HASH, *proof[1:]]))
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_reference_inclusion_corruptions_fail(index: int, size: int, proof: list[bytes]) -> None:
    probes = _inclusion_probes(index, size, proof, ROOTS[size - 1], leaf_hash(LEAVES[index]))
    for p_index, p_size, p_root, p_leaf, p_proof in probes:
        if p_index < 0:
            continue
        with pytest.raises(ProofInvalid):
            verify_inclusion(p_index, p_size, p_leaf, p_proof, p_root)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS[1:])
def test_reference_consistency_corruptions_fail(old: int, new: int, proof: list[bytes]) -> None:
    # The corruptions of transparency-dev/merkle's corruptConsistencyProof.
    root1, root2 = ROOTS[old - 1], ROOTS[new - 1]
    probes = [
        (old - 1, new, root1, root2, proof),
        (old + 1, new, root1, root2, proof),
        (old ^ 2, new, root1, root2, proof),
        (old, new * 2, root1, root2, proof),
        (old, new // 2, root1, root2, proof),
        (old, new, b"WrongRoot", root2, proof),
        (old, new, root1, b"WrongRoot", proof),
        (old, new, root2, root1, proof),
        (old, new, root1, root2, []),
        (old, new, root1, root2, [*proof, b""]),
        (old, new, root1, root2, [*proof, root1]),
        (old, new, root1, root2, [*proof, root2]),
        (old, new, root1, root2, [b"", *proof]),
        (old, new, root1, root2, [root1, *proof]),
        (old, new, root1, root2, [root2, *proof]),
        (old, new, root1, root2, [proof[0], *proof]),
        (old, new, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([proof[i][0] ^ 16]) + proof[i][1:]
        probes.append((old, new, root1, root2, flipped))
    for p_old, p_new, p_root1, p_root2, p_proof in probes:
        with pytest.raises(ProofInvalid):
            verify_consistency(p_old, p_new, p_root1, p_root2, p_proof)


def test_single_entry_tree() -> None:
    # transparency-dev/merkle TestVerifyInclusionSingleEntry: the root is the leaf hash.
    digest = leaf_hash(b"data")
    verify_inclusion(0, 1, digest, [], digest)
    for leaf, root_hash in [(digest, b""), (b"", digest), (b"", b"")]:
        with pytest.raises(ProofInvalid):
            verify_inclusion(0, 1, leaf, [], root_hash)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_inclusion_rejects_impossible_positions(index: int, size: int) -> None:
    # transparency-dev/merkle TestVerifyInclusion's probes.
    for leaf, root_hash in [(SOME_HASH, b""), (b"", EMPTY_ROOT), (SOME_HASH, EMPTY_ROOT)]:
        with pytest.raises(ProofInvalid):
            verify_inclusion(index, size, leaf, [], root_hash)


def test_index_outside_tree_fails_with_reason() -> None:
    with pytest.raises(ProofInvalid) as err:
        verify_inclusion(8, 8, leaf_hash(b"x"), [], ROOTS[7])
    assert err.value.reason == "index_out_of_range"


R1, R2 = hashlib.sha256(b"don't care 1").digest(), hashlib.sha256(b"don't care 2").digest()


@pytest.mark.parametrize(
    ("old", "new", "root1", "root2", "proof", "ok"),
    [
        # transparency-dev/merkle TestVerifyConsistency, with 32-byte stand-in roots.
        (0, 0, R1, R2, [], False),
        (1, 1, R1, R2, [], False),
        (0, 0, R1, R1, [], True),
        (1, 1, R2, R2, [], True),
        (1, 0, R1, R2, [], False),
        (2, 1, R1, R2, [], False),
        (1, 2, R1, R2, [], False),
        (0, 0, EMPTY_ROOT, R2, [], False),
        (1, 1, EMPTY_ROOT, R2, [], False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        # Deliberately stricter than Go, which accepts any old root for size 0: the empty
        # tree's root is defined (SHA-256 of nothing), so anything else is a bogus checkpoint.
        (0, 1, EMPTY_ROOT, R2, [], True),
        (0, 1, R1, R2, [], False),
    ],
)
def test_consistency_edge_cases(
    old: int, new: int, root1: bytes, root2: bytes, proof: list[bytes], ok: bool
) -> None:
    if ok:
        verify_consistency(old, new, root1, root2, proof)
    else:
        with pytest.raises(ProofInvalid):
            verify_consistency(old, new, root1, root2, proof)


# RFC 9162 section 2.1.5's example tree of seven leaves d0..d6, with its node names.
RFC_NODES = {
    "a": (0, 1), "b": (1, 2), "c": (2, 3), "d": (3, 4), "e": (4, 5), "f": (5, 6), "j": (6, 7),
    "g": (0, 2), "h": (2, 4), "i": (4, 6), "k": (0, 4), "l": (4, 7),
}  # fmt: skip
RANGE_NAMES = {span: name for name, span in RFC_NODES.items()}


def _names(start: int, end: int) -> bytes:
    return RANGE_NAMES[(start, end)].encode()


@pytest.mark.parametrize(("index", "expected"), [(0, "bhl"), (3, "cgl"), (4, "fjk"), (6, "ik")])
def test_rfc9162_example_inclusion_paths(index: int, expected: str) -> None:
    assert b"".join(inclusion_proof(index, 7, _names)) == expected.encode()


@pytest.mark.parametrize(("old", "expected"), [(3, "cdgl"), (4, "l"), (6, "ijk"), (5, "efjk")])
def test_rfc9162_example_consistency_proofs(old: int, expected: str) -> None:
    assert b"".join(consistency_proof(old, 7, _names)) == expected.encode()


def test_generation_rejects_impossible_requests() -> None:
    for index, size in [(0, 0), (3, 3), (-1, 4)]:
        with pytest.raises(ValueError):
            inclusion_proof(index, size, _names)
    with pytest.raises(ValueError):
        consistency_proof(5, 4, _names)
    assert consistency_proof(0, 7, _names) == []
    assert consistency_proof(7, 7, _names) == []


def test_every_proof_in_small_trees_verifies() -> None:
    tree = MemoryTree.from_entries(i.to_bytes(2, "big") for i in range(40))
    for size in range(1, 41):
        root_hash = tree.root(size)
        assert root_hash == root([tree.leaf_hash(i) for i in range(size)])
        for index in range(size):
            verify_inclusion(
                index, size, tree.leaf_hash(index), tree.inclusion_proof(index, size), root_hash
            )
        for old in range(size + 1):
            verify_consistency(
                old, size, tree.root(old), root_hash, tree.consistency_proof(old, size)
            )


def test_inclusion_proof_alone_does_not_bind_the_tree_size() -> None:
    """A proof plus root can verify under a second size whose path has the same shape.

    RFC 9162 proofs bind the leaf and its position to the root, not the size: that is why the
    size that counts is the one in the log's signed checkpoint, signed together with the root.
    """
    tree = MemoryTree.from_entries(LEAVES)
    proof = tree.inclusion_proof(4, 8)
    verify_inclusion(4, 7, tree.leaf_hash(4), proof, tree.root(8))
    with pytest.raises(ProofInvalid):
        verify_inclusion(4, 7, tree.leaf_hash(4), proof, tree.root(7))


MAX_SIZE = 300
BIG = MemoryTree.from_entries(i.to_bytes(4, "big") for i in range(MAX_SIZE))
BIG_ROOTS = [BIG.root(size) for size in range(MAX_SIZE + 1)]


@st.composite
def leaf_positions(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(0, size - 1)), size


@st.composite
def size_pairs(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(0, new)), new


@settings(max_examples=300, deadline=None)
@given(position=leaf_positions(), data=st.data())
def test_inclusion_proofs_verify_and_every_alteration_fails(
    position: tuple[int, int], data: st.DataObject
) -> None:
    index, size = position
    leaf, proof, root_hash = BIG.leaf_hash(index), BIG.inclusion_proof(index, size), BIG_ROOTS[size]
    verify_inclusion(index, size, leaf, proof, root_hash)

    altered: list[list[bytes]] = []
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        flipped = bytearray(proof[at])
        flipped[bit // 8] ^= 1 << (bit % 8)
        altered.append([*proof[:at], bytes(flipped), *proof[at + 1 :]])
        altered.append(proof[:at] + proof[at + 1 :])
    extra = data.draw(st.binary(min_size=32, max_size=32))
    where = data.draw(st.integers(0, len(proof)))
    altered.append([*proof[:where], extra, *proof[where:]])
    for bad in altered:
        with pytest.raises(ProofInvalid):
            verify_inclusion(index, size, leaf, bad, root_hash)

    other_index = (
        data.draw(st.integers(0, size - 1).filter(lambda i: i != index)) if size > 1 else None
    )
    if other_index is not None:
        with pytest.raises(ProofInvalid):
            verify_inclusion(other_index, size, leaf, proof, root_hash)
    # A wrong size claimed with that size's real root, as a lying log would have to.
    other_size = data.draw(st.integers(index + 1, MAX_SIZE).filter(lambda s: s != size))
    with pytest.raises(ProofInvalid):
        verify_inclusion(index, other_size, leaf, proof, BIG_ROOTS[other_size])


@settings(max_examples=300, deadline=None)
@given(sizes=size_pairs(), data=st.data())
def test_consistency_proofs_verify_and_every_alteration_fails(
    sizes: tuple[int, int], data: st.DataObject
) -> None:
    old, new = sizes
    proof = BIG.consistency_proof(old, new)
    verify_consistency(old, new, BIG_ROOTS[old], BIG_ROOTS[new], proof)

    altered: list[list[bytes]] = []
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        flipped = bytearray(proof[at])
        flipped[bit // 8] ^= 1 << (bit % 8)
        altered.append([*proof[:at], bytes(flipped), *proof[at + 1 :]])
        altered.append(proof[:at] + proof[at + 1 :])
    extra = data.draw(st.binary(min_size=32, max_size=32))
    where = data.draw(st.integers(0, len(proof)))
    altered.append([*proof[:where], extra, *proof[where:]])
    for bad in altered:
        with pytest.raises(ProofInvalid):
            verify_consistency(old, new, BIG_ROOTS[old], BIG_ROOTS[new], bad)

    if not 0 < old < new:
        return  # the empty proof of a trivial pair is also right for other trivial pairs
    # Wrong sizes claimed with those sizes' real roots, as a lying log would have to.
    other_old = data.draw(st.integers(0, new).filter(lambda s: s != old))
    with pytest.raises(ProofInvalid):
        verify_consistency(other_old, new, BIG_ROOTS[other_old], BIG_ROOTS[new], proof)
    other_new = data.draw(st.integers(old, MAX_SIZE).filter(lambda s: s != new))
    with pytest.raises(ProofInvalid):
        verify_consistency(old, other_new, BIG_ROOTS[old], BIG_ROOTS[other_new], proof)
    with pytest.raises(ProofInvalid):
        verify_consistency(old, new, BIG_ROOTS[new], BIG_ROOTS[old], proof)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=8), max_size=70))
def test_memory_tree_matches_the_recursive_definition(entries: list[bytes]) -> None:
    def mth(leaves: list[bytes]) -> bytes:
        # RFC 9162 section 2.1.1, written exactly as the recursion.
        if not leaves:
            return hashlib.sha256(b"").digest()
        if len(leaves) == 1:
            return leaf_hash(leaves[0])
        k = 1 << ((len(leaves) - 1).bit_length() - 1)
        return node_hash(mth(leaves[:k]), mth(leaves[k:]))

    assert MemoryTree.from_entries(entries).root() == mth(entries)
    assert root([leaf_hash(e) for e in entries]) == mth(entries)
