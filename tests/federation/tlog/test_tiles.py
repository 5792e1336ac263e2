"""C2SP tlog-tiles: paths, tile contents, entry bundles, and the on-disk TileLog."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.tlog.checkpoint import open_checkpoint
from federation.tlog.merkle import EMPTY_ROOT, MemoryTree, root
from federation.tlog.note import NoteSigner
from federation.tlog.proof import verify_tlog_proof
from federation.tlog.tiles import (
    CHECKPOINT_PATH,
    ENTRIES,
    BundleMalformed,
    DirectoryStorage,
    EntryTooLarge,
    TileCorrupt,
    TileLog,
    TileMissing,
    TilePathInvalid,
    TileReader,
    TileRef,
    bundles_for_size,
    decode_bundle,
    encode_bundle,
    encode_tile_index,
    entries_path,
    parse_tile_path,
    tile_leaf_ranges,
    tile_path,
    tiles_for_size,
)

LOG = NoteSigner.generate("log.porchlight.example")


def entries(n: int, start: int = 0) -> list[bytes]:
    return [f"eyJ0eXAiOiJwb3JjaGxpZ2h0LXJlcXVlc3Qrandz.{i}.c2ln".encode() for i in range(start, n)]


def files_under(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()}


@pytest.mark.parametrize(
    ("index", "encoded"),
    [(0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_tile_index_encoding(index: int, encoded: str) -> None:
    assert encode_tile_index(index) == encoded


def test_tile_paths_follow_the_spec_examples() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(2, 1234067, 8) == "tile/2/x001/x234/067.p/8"
    assert entries_path(1234067) == "tile/entries/x001/x234/067"
    assert entries_path(3, 112) == "tile/entries/003.p/112"
    assert parse_tile_path("tile/0/x001/x234/067.p/8") == TileRef(0, 1234067, 8)
    assert parse_tile_path("tile/entries/003") == TileRef(ENTRIES, 3)


@settings(max_examples=200, deadline=None)
@given(
    level=st.one_of(st.integers(0, 63), st.just(ENTRIES)),
    index=st.integers(0, 2**56),
    width=st.integers(1, 256),
)
def test_tile_paths_round_trip(level: int | str, index: int, width: int) -> None:
    ref = TileRef(level, index, width)
    assert parse_tile_path(ref.path) == ref


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/x000/001",  # non-canonical index
        "tile/00/000",
        "tile/64/000",
        "tile/0/1234",
        "tile/0/12",
        "tile/0/x001",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/007",
        "tile/0/000.p/",
        "tile/0/../000",
        "/tile/0/000",
        "tile/0/000/",
        "tile/blobs/000",
        "checkpoint",
        "",
    ],
)
def test_bad_tile_paths_are_rejected(path: str) -> None:
    with pytest.raises(TilePathInvalid):
        parse_tile_path(path)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="tile/entriesx0123456789.p", max_size=40))
def test_parsing_arbitrary_paths_raises_only_path_errors(path: str) -> None:
    try:
        ref = parse_tile_path(path)
    except TilePathInvalid:
        return
    assert ref.path == path


def test_tiles_of_the_spec_example_sizes() -> None:
    # "A tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    # tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1." (c2sp.org/tlog-tiles)
    refs = tiles_for_size(70_000)
    assert sum(1 for r in refs if r.level == 0 and not r.is_partial) == 273
    assert [r for r in refs if r.is_partial] == [
        TileRef(0, 273, 112),
        TileRef(1, 1, 17),
        TileRef(2, 0, 1),
    ]
    assert [r for r in refs if r.level == 1 and not r.is_partial] == [TileRef(1, 0)]
    assert len(refs) == 273 + 1 + 1 + 1 + 1
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
    # tile of width 1."
    assert tiles_for_size(256) == [TileRef(0, 0), TileRef(1, 0, 1)]
    assert tiles_for_size(0) == []
    assert bundles_for_size(70_000)[-1] == TileRef(ENTRIES, 273, 112)


def test_tile_leaf_ranges() -> None:
    assert tile_leaf_ranges(0, 3, 2) == [(768, 769), (769, 770)]
    assert tile_leaf_ranges(1, 0, 2) == [(0, 256), (256, 512)]
    assert tile_leaf_ranges(2, 1, 1) == [(256**3, 256**3 + 256**2)]


def test_entry_bundles() -> None:
    bundle = encode_bundle([b"a", b"", b"x" * 300])
    assert bundle[:3] == b"\x00\x01a"
    assert bundle[3:5] == b"\x00\x00"
    assert bundle[5:7] == (300).to_bytes(2, "big")
    assert decode_bundle(bundle, 3) == [b"a", b"", b"x" * 300]
    for bad in [b"\x00", b"\x00\x05abc", bundle[:-1]]:
        with pytest.raises(BundleMalformed):
            decode_bundle(bad)
    with pytest.raises(BundleMalformed):
        decode_bundle(bundle, 2)
    with pytest.raises(EntryTooLarge):
        encode_bundle([bytes(65536)])
    assert decode_bundle(encode_bundle([bytes(65535)])) == [bytes(65535)]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600))
def test_decoding_arbitrary_bundles_raises_only_bundle_errors(data: bytes) -> None:
    try:
        decoded = decode_bundle(data)
    except BundleMalformed:
        return
    assert encode_bundle(decoded) == data


def test_new_log_publishes_an_empty_checkpoint(tmp_path: Path) -> None:
    log = TileLog(tmp_path, LOG)
    assert (log.size, log.root_hash) == (0, EMPTY_ROOT)
    checkpoint = open_checkpoint((tmp_path / "checkpoint").read_bytes(), LOG.verifier())
    assert (checkpoint.origin, checkpoint.size, checkpoint.root_hash) == (LOG.name, 0, EMPTY_ROOT)
    assert files_under(tmp_path) == {"checkpoint"}
    assert TileLog(tmp_path, LOG).size == 0
    assert log.append_batch([]) == 0


def test_thousand_entries_reopen_with_the_same_root_and_matching_proofs(tmp_path: Path) -> None:
    data = entries(1000)
    log = TileLog(tmp_path, LOG)
    # One by one across the first tile boundary, then batches of odd sizes.
    for entry in data[:300]:
        log.append(entry)
    assert log.append_batch(data[300:555]) == 300
    for entry in data[555:600]:
        log.append(entry)
    log.append_batch(data[600:1000])
    reference = MemoryTree.from_entries(data)
    assert log.root_hash == reference.root()

    reopened = TileLog(tmp_path, LOG)
    assert (reopened.size, reopened.root_hash) == (1000, reference.root())
    assert reopened.signed_checkpoint == log.signed_checkpoint
    for size in [1, 2, 255, 256, 257, 511, 512, 513, 768, 999, 1000]:
        assert reopened.root_at(size) == reference.root(size)
        for index in {0, size // 3, size // 2, size - 1}:
            assert reopened.inclusion_proof(index, size) == reference.inclusion_proof(index, size)
    for index in range(0, 1000, 7):
        assert reopened.inclusion_proof(index) == reference.inclusion_proof(index)
    for old in range(0, 1001, 9):
        assert reopened.consistency_proof(old) == reference.consistency_proof(old)
    for old, new in [(1, 256), (255, 257), (256, 512), (300, 555), (513, 768), (700, 999)]:
        assert reopened.consistency_proof(old, new) == reference.consistency_proof(old, new)
    assert [reopened.entry(i) for i in (0, 255, 256, 767, 768, 999)] == [
        data[i] for i in (0, 255, 256, 767, 768, 999)
    ]

    # Appending after reopening continues the same tree.
    more = entries(1100, 1000)
    reopened.append_batch(more)
    assert reopened.root_hash == MemoryTree.from_entries(data + more).root()


def test_tile_files_hold_what_the_spec_says(tmp_path: Path) -> None:
    data = entries(700)
    log = TileLog(tmp_path, LOG)
    log.append_batch(data[:600])
    for entry in data[600:]:
        log.append(entry)
    reference = MemoryTree.from_entries(data)
    leaf_hashes = [reference.leaf_hash(i) for i in range(700)]
    assert (tmp_path / "tile/0/000").read_bytes() == b"".join(leaf_hashes[:256])
    assert (tmp_path / "tile/0/001").read_bytes() == b"".join(leaf_hashes[256:512])
    assert (tmp_path / "tile/0/002.p/188").read_bytes() == b"".join(leaf_hashes[512:700])
    # Level 1 hashes are the tree hashes of full level-0 tiles; its tile stays partial.
    assert (tmp_path / "tile/1/000.p/2").read_bytes() == root(leaf_hashes[:256]) + root(
        leaf_hashes[256:512]
    )
    assert decode_bundle((tmp_path / "tile/entries/001").read_bytes(), 256) == data[256:512]
    assert decode_bundle((tmp_path / "tile/entries/002.p/188").read_bytes()) == data[512:]
    # Partial tiles go once their full tile exists; partials of the open tile stay for the
    # checkpoints that were published at those sizes.
    on_disk = files_under(tmp_path)
    assert not any(name.startswith(("tile/0/000.p", "tile/0/001.p")) for name in on_disk)
    assert {"tile/0/002.p/88", "tile/0/002.p/89", "tile/entries/002.p/88"} <= on_disk
    assert "tile/1/000.p/2" in on_disk  # the batch of 600 went straight to width 2
    assert not any(".tmp" in name for name in on_disk)


def test_served_resources_and_a_client_side_reader(tmp_path: Path) -> None:
    data = entries(600)
    log = TileLog(tmp_path, LOG)
    log.append_batch(data[:590])
    for entry in data[590:]:
        log.append(entry)
    assert log.read("checkpoint") == log.signed_checkpoint.encode()
    assert log.read("tile/0/001") == (tmp_path / "tile/0/001").read_bytes()
    assert log.read("tile/0/002.p/88") == (tmp_path / "tile/0/002.p/88").read_bytes()
    assert log.read("tile/0/002.p/80") == (tmp_path / "tile/0/002.p/80").read_bytes()
    assert log.read("tile/entries/002.p/88") == encode_bundle(data[512:])
    for beyond in [
        "tile/0/002",
        "tile/0/002.p/89",
        "tile/1/000",
        "tile/2/000.p/1",
        "tile/0/003.p/1",
    ]:
        with pytest.raises(TileMissing):
            log.read(beyond)
    with pytest.raises(TileMissing):
        log.read("tile/0/000.p/5")  # replaced by the full tile
    with pytest.raises(TilePathInvalid):
        log.read("tile/0/../../etc/passwd")

    # A client holding only the checkpoint computes proofs from fetched tiles.
    checkpoint = open_checkpoint(log.read("checkpoint"), LOG.verifier())
    reader = TileReader(checkpoint.size, lambda ref: log.read(ref.path))
    reference = MemoryTree.from_entries(data)
    assert reader.root() == checkpoint.root_hash
    assert reader.inclusion_proof(300) == reference.inclusion_proof(300)
    assert reader.consistency_proof(123) == reference.consistency_proof(123)


def test_tlog_proof_bundle_from_the_log_verifies(tmp_path: Path) -> None:
    data = entries(300)
    log = TileLog(tmp_path, LOG)
    log.append_batch(data[:100])
    last_seen = log.signed_checkpoint
    log.append_batch(data[100:])
    result = verify_tlog_proof(
        data[42], log.tlog_proof(42), LOG.verifier(), last_seen, log.consistency_proof(100)
    )
    assert (result.index, result.checkpoint.size) == (42, 300)


def test_oversized_entry_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    log = TileLog(tmp_path, LOG)
    log.append(b"ok")
    before = {name: (tmp_path / name).read_bytes() for name in files_under(tmp_path)}
    with pytest.raises(EntryTooLarge):
        log.append_batch([b"fine", bytes(65536)])
    assert log.size == 1
    assert {name: (tmp_path / name).read_bytes() for name in files_under(tmp_path)} == before


class CheckpointWriteFails(DirectoryStorage):
    """Real files, but the disk fills up exactly when the checkpoint is written."""

    fail = False

    def write(self, files):  # type: ignore[no-untyped-def]
        if self.fail and CHECKPOINT_PATH in files:
            raise OSError(28, "No space left on device")
        super().write(files)


def test_failed_append_leaves_the_log_as_it_was(tmp_path: Path) -> None:
    storage = CheckpointWriteFails(tmp_path)
    log = TileLog(storage, LOG)
    data = entries(600)
    log.append_batch(data[:250])
    before_root, before_files = log.root_hash, files_under(tmp_path)
    storage.fail = True
    with pytest.raises(OSError, match="No space"):
        log.append_batch(data[250:600])  # would complete tiles 0 and 1
    assert (log.size, log.root_hash) == (250, before_root)
    assert files_under(tmp_path) == before_files  # the unpublished tiles were removed
    storage.fail = False
    assert TileLog(tmp_path, LOG).size == 250
    log.append_batch(data[250:600])
    assert log.root_hash == MemoryTree.from_entries(data).root()


class PowerCut(Exception):
    """The machine lost power: nothing more reaches the disk."""


class PowerCutStorage(DirectoryStorage):
    """Real files; once armed, the power goes just as the checkpoint is about to be written."""

    armed = False
    dead = False

    def write(self, files):  # type: ignore[no-untyped-def]
        if self.dead or (self.armed and CHECKPOINT_PATH in files):
            self.dead = True
            raise PowerCut
        super().write(files)

    def delete(self, path: str) -> bool:
        if self.dead:
            raise PowerCut
        return super().delete(path)


def test_power_cut_before_the_checkpoint_rolls_back_on_open(tmp_path: Path) -> None:
    data = entries(900)
    storage = PowerCutStorage(tmp_path)
    log = TileLog(storage, LOG)
    log.append_batch(data[:300])
    published = files_under(tmp_path)
    storage.armed = True
    with pytest.raises(PowerCut):
        log.append_batch([b"never published"] * 500)
    assert {"tile/0/001", "tile/0/002", "tile/0/003.p/32"} <= files_under(tmp_path)

    # After the reboot the log is at its last checkpoint and the unpublished tiles are gone.
    recovered = TileLog(tmp_path, LOG)
    assert recovered.size == 300
    assert files_under(tmp_path) == published
    recovered.append_batch(data[300:])
    reference = MemoryTree.from_entries(data)
    assert recovered.root_hash == reference.root()
    assert recovered.inclusion_proof(600) == reference.inclusion_proof(600)
    assert recovered.entry(520) == data[520]


def test_opening_with_another_key_is_refused(tmp_path: Path) -> None:
    TileLog(tmp_path, LOG).append(b"entry")
    with pytest.raises(TileCorrupt) as err:
        TileLog(tmp_path, NoteSigner.generate(LOG.name))
    assert err.value.reason == "tile_log_wrong_key"


def test_damaged_tiles_are_detected_on_open(tmp_path: Path) -> None:
    log = TileLog(tmp_path, LOG)
    log.append_batch(entries(300))
    partial = tmp_path / "tile/0/001.p/44"
    original = partial.read_bytes()
    partial.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(TileCorrupt):
        TileLog(tmp_path, LOG)
    partial.write_bytes(original[:-32])
    with pytest.raises(TileCorrupt):
        TileLog(tmp_path, LOG)
    partial.write_bytes(original)
    (tmp_path / "tile/entries/001.p/44").write_bytes(encode_bundle(entries(44, 1)))
    with pytest.raises(TileCorrupt):
        TileLog(tmp_path, LOG)


def test_seventy_thousand_entries_lay_out_as_the_spec_example(tmp_path: Path) -> None:
    # Durability is not what this test is about; skip fsync to keep it quick.
    storage = DirectoryStorage(tmp_path, durable=False)
    log = TileLog(storage, LOG)
    started = time.perf_counter()
    for start in range(0, 70_000, 5_000):
        log.append_batch(entries(start + 5_000, start))
    elapsed = time.perf_counter() - started
    expected = {ref.path for ref in tiles_for_size(70_000) + bundles_for_size(70_000)}
    assert files_under(tmp_path) == expected | {"checkpoint"}
    reopened = TileLog(DirectoryStorage(tmp_path, durable=False), LOG)
    assert reopened.root_hash == log.root_hash
    reference = MemoryTree.from_entries(entries(70_000))
    assert log.root_hash == reference.root()
    assert reopened.inclusion_proof(65_432) == reference.inclusion_proof(65_432)
    assert reopened.consistency_proof(12_345) == reference.consistency_proof(12_345)
    assert elapsed < 20, f"appending 70,000 entries took {elapsed:.1f} s"


def test_directory_storage_writes_atomically(tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path)
    storage.write({"tile/0/000.p/1": b"a" * 32, "checkpoint": b"cp"})
    storage.write({"checkpoint": b"cp2"})
    assert storage.read("checkpoint") == b"cp2"
    assert storage.read("tile/0/000.p/2") is None
    assert storage.delete("tile/0/000.p") and not storage.delete("tile/0/000.p")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "tile"]
    with pytest.raises(ValueError):
        storage.write({"../escape": b""})
