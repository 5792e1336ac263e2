"""Rebuilding a log from served tiles: one altered tile or bundle, whichever, is named."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.auditor.tiles import rebuild_log
from federation.keys import generate_signing_key
from federation.neighbourhood_log import checkpoint_signer
from federation.tlog.tiles import TileLog, TileRef, bundles_for_size, tiles_for_size

KEY = generate_signing_key()


class MemoryStorage:
    """TileStorage in a dict (the tests' own; the gateway keeps a directory)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def read(self, path: str) -> bytes | None:
        return self.files.get(path)

    def write(self, files: Mapping[str, bytes]) -> None:
        self.files.update(files)

    def delete(self, path: str) -> bool:
        gone = [p for p in self.files if p == path or p.startswith(path + "/")]
        for p in gone:
            del self.files[p]
        return bool(gone)


_LOGS: dict[int, TileLog] = {}


def _entry(index: int) -> bytes:
    return f"entry {index} ".encode() * (1 + index % 7)


def _log(size: int) -> TileLog:
    if size not in _LOGS:
        log = TileLog(MemoryStorage(), checkpoint_signer(KEY))
        log.append_batch(_entry(i) for i in range(size))
        _LOGS[size] = log
    return _LOGS[size]


def _served(log: TileLog) -> tuple[dict[TileRef, bytes], dict[TileRef, bytes]]:
    tiles = {ref: log.read(ref.path) for ref in tiles_for_size(log.size)}
    bundles = {ref: log.read(ref.path) for ref in bundles_for_size(log.size)}
    return tiles, bundles


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


@pytest.mark.parametrize("size", [1, 255, 256, 257, 600, 65536 + 300])
def test_honest_tiles_rebuild_the_checkpoint(size):
    log = _log(size)
    tiles, bundles = _served(log)
    rebuilt = rebuild_log(size, log.root_hash, tiles, bundles)
    assert rebuilt.faults == [] and rebuilt.verified
    assert rebuilt.entries == [_entry(i) for i in range(size)]
    assert rebuilt.reader().root(size // 2) == log.root_at(size // 2)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.sampled_from([1, 2, 255, 256, 257, 511, 512, 600, 65536 + 300]),
    pick=st.integers(min_value=0),
    offset=st.integers(min_value=0),
)
def test_any_one_altered_byte_names_its_tile(size, pick, offset):
    log = _log(size)
    tiles, bundles = _served(log)
    served = {**tiles, **bundles}
    ref = sorted(served, key=lambda r: r.path)[pick % len(served)]
    data = served[ref]
    offset %= len(data)
    if ref in tiles:
        tiles[ref] = _flip(data, offset)
    else:
        bundles[ref] = _flip(data, offset)

    rebuilt = rebuild_log(size, log.root_hash, tiles, bundles)

    assert [fault.path for fault in rebuilt.faults] == [ref.path], rebuilt.faults
    (fault,) = rebuilt.faults
    assert fault.message.startswith(ref.path)
    assert fault.reason in ("tile_altered", "tile_malformed")
    assert not rebuilt.verified
    # Every entry the altered resource does not hold is still known, and right.
    for index, entry in enumerate(rebuilt.entries):
        assert entry is None or entry == _entry(index)
    if ref in tiles:
        assert rebuilt.entries == [_entry(i) for i in range(size)]


def test_each_kind_of_tile_is_named_with_a_reason():
    log = _log(600)
    cases = {
        "tile/0/001": "tile/0/001 is altered: its hashes do not match the entries or the hash "
        "tile/1/000.p/2 holds for it",
        "tile/0/002.p/88": "tile/0/002.p/88 is altered: its hashes do not match the entries or "
        "the signed checkpoint",
        "tile/1/000.p/2": "tile/1/000.p/2 is altered: its hashes do not match the entries or "
        "the signed checkpoint",
        "tile/entries/001": "tile/entries/001 is altered: entry 256 does not match the signed "
        "checkpoint",
        "tile/entries/002.p/88": "tile/entries/002.p/88 is altered: entry 512 does not match "
        "the signed checkpoint",
    }
    for path, message in cases.items():
        tiles, bundles = _served(log)
        for served in (tiles, bundles):
            for ref in served:
                if ref.path == path:
                    served[ref] = _flip(served[ref], 5)
        (fault,) = rebuild_log(600, log.root_hash, tiles, bundles).faults
        assert (fault.path, fault.message) == (path, message)


def test_missing_short_and_broken_tiles_are_named():
    log = _log(600)
    tiles, bundles = _served(log)
    tiles[TileRef(0, 0)] = None
    tiles[TileRef(0, 1)] = tiles[TileRef(0, 1)][:-1]
    bundles[TileRef("entries", 0)] = bundles[TileRef("entries", 0)][:-3]
    faults = rebuild_log(600, log.root_hash, tiles, bundles).faults
    assert [(f.path, f.reason, f.message) for f in faults] == [
        ("tile/entries/000", "tile_malformed",
         "tile/entries/000 is not a valid entry bundle: entry bundle ends inside an entry"),
        ("tile/0/000", "tile_missing", "tile/0/000: the gateway does not serve it"),
        ("tile/0/001", "tile_malformed", "tile/0/001 holds 8191 bytes, not the 8192 of 256 hashes"),
    ]


def test_a_checkpoint_nothing_rebuilds_is_a_root_mismatch():
    log = _log(600)
    tiles, bundles = _served(log)
    rebuilt = rebuild_log(600, log.root_at(599), tiles, bundles)
    assert [(f.path, f.reason, f.message) for f in rebuilt.faults] == [
        (None, "root_mismatch",
         "neither the hash tiles nor the entry bundles rebuild the signed checkpoint's root hash"),
    ]
    assert rebuilt.reader() is None
