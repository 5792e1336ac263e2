"""C2SP tlog-tiles (https://c2sp.org/tlog-tiles): the log as static checkpoint, tiles and bundles.

A tile at level L holds up to 256 consecutive Merkle tree hashes of height 8*L; level 0 holds
leaf hashes, and each hash at level L+1 is the tree hash of one full tile at level L. Entry
bundles hold the entries themselves, each a big-endian uint16 length and the bytes. Paths are
``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]``, with N written in 3-digit path
elements, all but the last prefixed with ``x`` (1234067 is ``x001/x234/067``).

``TileReader`` computes node hashes, roots and proofs from tiles, wherever they come from.
``TileLog`` is the append-only log the gateway runs: it writes tiles, bundles and a signed
checkpoint through a ``TileStorage`` (``DirectoryStorage`` lays them out on disk exactly as the
HTTP paths, so a static file server can serve the directory). It keeps only the right edge of
the tree (the partial tiles) in memory; full tiles are immutable and read back when needed.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from federation.errors import FederationError
from federation.tlog.checkpoint import Checkpoint, CheckpointError, open_checkpoint, sign_checkpoint
from federation.tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_TREE_SIZE,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    subtree_hash,
)
from federation.tlog.note import NoteSigner, NoteVerifier
from federation.tlog.proof import format_tlog_proof

log = logging.getLogger(__name__)

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF  # the uint16 length prefix of entry bundles
ENTRIES: Literal["entries"] = "entries"
CHECKPOINT_PATH = "checkpoint"

_TILE_PATH = re.compile(
    r"tile/(?P<level>entries|0|[1-9][0-9]?)/(?P<index>(?:x[0-9]{3}/){0,7}[0-9]{3})"
    r"(?:\.p/(?P<width>[1-9][0-9]{0,2}))?"
)


class TileError(FederationError):
    """Base of every tile and tile-log failure."""

    default_reason = "tile_error"


class TilePathInvalid(TileError):
    """A path is not a tlog-tiles resource path."""

    default_reason = "tile_path_invalid"


class BundleMalformed(TileError):
    """An entry bundle is truncated or holds the wrong number of entries."""

    default_reason = "bundle_malformed"


class EntryTooLarge(TileError):
    """An entry is longer than an entry bundle can hold (65535 bytes)."""

    default_reason = "entry_too_large"


class TileMissing(TileError):
    """A tile or bundle the tree needs is not in storage."""

    default_reason = "tile_missing"


class TileCorrupt(TileError):
    """Stored tiles do not match each other or the signed checkpoint."""

    default_reason = "tile_corrupt"


def encode_tile_index(index: int) -> str:
    """Encode a tile index as 3-digit path elements, all but the last prefixed with x."""
    if not isinstance(index, int) or index < 0:
        raise ValueError(f"tile index must be a non-negative integer, not {index!r}")
    digits = str(index)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


@dataclass(frozen=True)
class TileRef:
    """One tile or entry bundle: its level (or ``"entries"``), index and width."""

    level: int | Literal["entries"]
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if self.level != ENTRIES and (
            not isinstance(self.level, int) or not 0 <= self.level <= MAX_TILE_LEVEL
        ):
            raise ValueError(f"tile level must be 0 to {MAX_TILE_LEVEL} or 'entries'")
        if not isinstance(self.index, int) or self.index < 0:
            raise ValueError("tile index must be a non-negative integer")
        if not isinstance(self.width, int) or not 1 <= self.width <= TILE_WIDTH:
            raise ValueError(f"tile width must be 1 to {TILE_WIDTH}")

    @property
    def is_partial(self) -> bool:
        """Tell whether the tile holds fewer than 256 hashes or entries."""
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        """Return the tile's path under the log prefix."""
        base = f"tile/{self.level}/{encode_tile_index(self.index)}"
        return f"{base}.p/{self.width}" if self.is_partial else base


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """Return the path of a hash tile, ``tile/<L>/<N>[.p/<W>]``."""
    return TileRef(level, index, width).path


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """Return the path of an entry bundle, ``tile/entries/<N>[.p/<W>]``."""
    return TileRef(ENTRIES, index, width).path


def parse_tile_path(path: str) -> TileRef:
    """Parse a tile or entry bundle path into a TileRef."""
    match = _TILE_PATH.fullmatch(path) if isinstance(path, str) else None
    if match is None:
        raise TilePathInvalid(f"{path!r} is not a tile path like tile/0/x001/234 or tile/0/005.p/7")
    level_text, index_text, width_text = match.group("level", "index", "width")
    index = int(index_text.replace("x", "").replace("/", ""))
    width = int(width_text) if width_text else TILE_WIDTH
    level: int | Literal["entries"] = ENTRIES if level_text == ENTRIES else int(level_text)
    if level != ENTRIES and level > MAX_TILE_LEVEL:
        raise TilePathInvalid(f"tile level must be at most {MAX_TILE_LEVEL}")
    if width_text and width >= TILE_WIDTH:
        raise TilePathInvalid("a partial tile holds 1 to 255 hashes")
    # One spelling per tile, so caches and file names never disagree ("x000/001" is "001").
    if encode_tile_index(index) != index_text:
        raise TilePathInvalid(f"{path!r} does not encode its tile index canonically")
    return TileRef(level, index, width)


def tile_leaf_ranges(level: int, index: int, width: int = TILE_WIDTH) -> list[tuple[int, int]]:
    """Return the leaf range ``[start, end)`` whose tree hash each hash of a tile holds."""
    span = TILE_WIDTH**level
    first = index * TILE_WIDTH
    return [((first + i) * span, (first + i + 1) * span) for i in range(width)]


def tiles_for_size(size: int) -> list[TileRef]:
    """Return every hash tile, full and partial, of a tree of ``size`` leaves."""
    refs: list[TileRef] = []
    level = 0
    while (count := size >> (TILE_HEIGHT * level)) > 0:
        full, width = divmod(count, TILE_WIDTH)
        refs.extend(TileRef(level, n) for n in range(full))
        if width:
            refs.append(TileRef(level, full, width))
        level += 1
    return refs


def bundles_for_size(size: int) -> list[TileRef]:
    """Return every entry bundle, full and partial, of a log of ``size`` entries."""
    full, width = divmod(size, TILE_WIDTH)
    refs = [TileRef(ENTRIES, n) for n in range(full)]
    if width:
        refs.append(TileRef(ENTRIES, full, width))
    return refs


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    """Encode entries as an entry bundle: each a big-endian uint16 length and the bytes."""
    parts = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise EntryTooLarge(
                f"a log entry is at most {MAX_ENTRY_SIZE} bytes, this one is {len(entry)}"
            )
        parts.append(len(entry).to_bytes(2, "big"))
        parts.append(bytes(entry))
    return b"".join(parts)


def decode_bundle(data: bytes, count: int | None = None) -> list[bytes]:
    """Decode an entry bundle, optionally checking it holds exactly ``count`` entries."""
    entries = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise BundleMalformed("entry bundle ends inside a length prefix")
        length = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if pos + length > len(data):
            raise BundleMalformed("entry bundle ends inside an entry")
        entries.append(bytes(data[pos : pos + length]))
        pos += length
    if count is not None and len(entries) != count:
        raise BundleMalformed(f"entry bundle holds {len(entries)} entries, expected {count}")
    return entries


def _split_hashes(data: bytes) -> list[bytes]:
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


class TileReader:
    """Node hashes, roots and proofs of a tree of ``size`` leaves, computed from its tiles."""

    def __init__(self, size: int, read_tile: Callable[[TileRef], bytes]) -> None:
        if not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
            raise ValueError("tree size must be an integer from 0 to 2^64-1")
        self.size = size
        self._read_tile = read_tile

    def tile(self, level: int, index: int) -> bytes:
        """Return the hashes of tile ``(level, index)`` as this tree's size has it."""
        count = self.size >> (TILE_HEIGHT * level)
        full, width = divmod(count, TILE_WIDTH)
        if index > full or (index == full and not width):
            raise ValueError(f"tile ({level}, {index}) is beyond a tree of size {self.size}")
        ref = TileRef(level, index) if index < full else TileRef(level, index, width)
        data = self._read_tile(ref)
        if len(data) != HASH_SIZE * ref.width:
            raise TileCorrupt(
                f"tile {ref.path} holds {len(data)} bytes, expected {HASH_SIZE * ref.width}"
            )
        return data

    def node(self, level: int, index: int) -> bytes:
        """Return the hash of the perfect subtree ``(level, index)``."""
        tile_level, height = divmod(level, TILE_HEIGHT)
        first = index << height  # first hash at tile_level under this node
        count = 1 << height
        if (first + count) << (TILE_HEIGHT * tile_level) > self.size:
            raise ValueError(f"subtree ({level}, {index}) is beyond a tree of size {self.size}")
        tile_index, offset = divmod(first, TILE_WIDTH)
        data = self.tile(tile_level, tile_index)
        # A node inside a tile is the perfect tree over 2^height of the tile's hashes.
        return root(_split_hashes(data[offset * HASH_SIZE : (offset + count) * HASH_SIZE]))

    def subtree_hash(self, start: int, end: int) -> bytes:
        """Return MTH(D[start:end])."""
        if end > self.size:
            raise ValueError(f"leaf range [{start}, {end}) is beyond tree size {self.size}")
        return subtree_hash(start, end, self.node)

    def leaf_hash(self, index: int) -> bytes:
        """Return the hash of leaf ``index``."""
        return self.node(0, index)

    def root(self, size: int | None = None) -> bytes:
        """Return the root hash at ``size`` leaves (default: the reader's size)."""
        size = self.size if size is None else size
        return EMPTY_ROOT if size == 0 else self.subtree_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the inclusion proof of leaf ``index`` in the tree at ``size``."""
        size = self.size if size is None else size
        if size > self.size:
            raise ValueError(f"tree size {size} is beyond the reader's size {self.size}")
        return inclusion_proof(index, size, self.subtree_hash)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Return the consistency proof from ``old_size`` to ``new_size``."""
        new_size = self.size if new_size is None else new_size
        if new_size > self.size:
            raise ValueError(f"tree size {new_size} is beyond the reader's size {self.size}")
        return consistency_proof(old_size, new_size, self.subtree_hash)


class TileStorage(Protocol):
    """Where a TileLog keeps its files, addressed by tlog-tiles paths."""

    def read(self, path: str) -> bytes | None:
        """Return a file's bytes, or None if it does not exist."""
        ...

    def write(self, files: Mapping[str, bytes]) -> None:
        """Replace each file atomically; all of them are durable when this returns."""
        ...

    def delete(self, path: str) -> bool:
        """Remove a file or directory tree; tell whether anything was there."""
        ...


_SAFE_PATH = re.compile(r"[A-Za-z0-9_]+(?:\.p)?(?:/[A-Za-z0-9_]+(?:\.p)?)*")


class DirectoryStorage:
    """TileStorage in a directory, laid out exactly as the tlog-tiles HTTP paths."""

    def __init__(self, root_dir: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.root = Path(root_dir)
        # durable=False skips fsync: only for throwaway logs, a power cut can then lose data.
        self.durable = durable
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, path: str) -> Path:
        # Only our own tile paths are ever joined to the root, so nothing escapes it.
        if not _SAFE_PATH.fullmatch(path):
            raise ValueError(f"unsafe storage path {path!r}")
        return self.root / path

    def read(self, path: str) -> bytes | None:
        """Return a file's bytes, or None if it does not exist."""
        try:
            return self._path(path).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def write(self, files: Mapping[str, bytes]) -> None:
        """Write each file to a temporary name, fsync it, and rename it into place."""
        dirty_dirs: set[Path] = set()
        for path, data in files.items():
            target = self._path(path)
            parent = target.parent
            if not parent.is_dir():
                # New directories must reach the disk too, or a power cut can lose a tile
                # whose data was synced: sync each new one and the one that holds them.
                walk = parent
                while not walk.is_dir():
                    dirty_dirs.add(walk)
                    walk = walk.parent
                dirty_dirs.add(walk)
                parent.mkdir(parents=True, exist_ok=True)
            tmp = parent / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    if self.durable:
                        os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            dirty_dirs.add(parent)
        if self.durable:
            for directory in sorted(dirty_dirs, key=lambda p: len(p.parts), reverse=True):
                _fsync_dir(directory)

    def delete(self, path: str) -> bool:
        """Remove a file or directory tree; tell whether anything was there."""
        target = self._path(path)
        if target.is_dir():
            shutil.rmtree(target)
            return True
        try:
            target.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _State:
    # One committed version of the log; swapped whole so readers never see half an append.
    size: int
    edges: tuple[bytes, ...]  # per tile level: the hashes of its partial tile (maybe none)
    bundle: tuple[bytes, ...]  # the entries of the partial entry bundle
    checkpoint: Checkpoint
    signed_checkpoint: str


class TileLog:
    """An append-only transparency log kept as C2SP tiles, entry bundles and a checkpoint.

    Every append publishes a new signed checkpoint, after the tiles it covers are durable;
    the checkpoint is the commit point, so a crash mid-append leaves the previous tree.
    One process appends at a time. Appending in batches writes far less than one by one.
    """

    _CACHE_TILES = 128  # full tiles are immutable: cache ~1 MiB of them for proofs

    def __init__(
        self,
        storage: TileStorage | str | os.PathLike[str],
        signer: NoteSigner,
        *,
        origin: str | None = None,
    ) -> None:
        self._storage: TileStorage = (
            DirectoryStorage(storage) if isinstance(storage, str | os.PathLike) else storage
        )
        self._signer = signer
        self.verifier: NoteVerifier = signer.verifier()
        self.origin = signer.name if origin is None else origin
        self._lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[TileRef, bytes] = OrderedDict()
        signed = self._storage.read(CHECKPOINT_PATH)
        if signed is None:
            self._state = self._commit(_empty_state(), {}, [])
            log.info("created transparency log %s", self.origin)
        else:
            self._state = self._load(signed)
            log.info("opened transparency log %s at size %s", self.origin, self._state.size)

    @property
    def size(self) -> int:
        """Return the number of entries."""
        return self._state.size

    @property
    def checkpoint(self) -> Checkpoint:
        """Return the current checkpoint."""
        return self._state.checkpoint

    @property
    def signed_checkpoint(self) -> str:
        """Return the current signed checkpoint note."""
        return self._state.signed_checkpoint

    @property
    def root_hash(self) -> bytes:
        """Return the current root hash."""
        return self._state.checkpoint.root_hash

    def append(self, entry: bytes) -> int:
        """Append one entry, publish a checkpoint, and return the entry's index."""
        return self.append_batch([entry])

    def append_batch(self, entries: Iterable[bytes]) -> int:
        """Append entries in order, publish one checkpoint, and return the first index."""
        batch = list(entries)
        for entry in batch:
            if not isinstance(entry, bytes | bytearray):
                raise TypeError("log entries are bytes")
            if len(entry) > MAX_ENTRY_SIZE:
                raise EntryTooLarge(
                    f"a log entry is at most {MAX_ENTRY_SIZE} bytes, this one is {len(entry)}"
                )
        with self._lock:
            old = self._state
            if old.size + len(batch) > MAX_TREE_SIZE:
                raise TileError("the log is full", reason="log_full")
            if not batch:
                return old.size
            edges, bundle, writes, completed = _extend(old, batch)
            try:
                self._state = self._commit(
                    _State(old.size + len(batch), edges, bundle, old.checkpoint, ""),
                    writes,
                    completed,
                )
            except BaseException:
                # The log stays at the old checkpoint; drop what the failed append wrote.
                try:
                    self._remove_uncommitted_all(old.size)
                except Exception:
                    log.exception("could not clean up after a failed append")
                raise
            log.debug("appended %s entries at index %s", len(batch), old.size)
            return old.size

    def reader(self) -> TileReader:
        """Return a TileReader over the current tree."""
        return self._reader(self._state)

    def entry(self, index: int) -> bytes:
        """Return the entry at ``index``."""
        state = self._state
        if not 0 <= index < state.size:
            raise IndexError(f"entry {index} is not in a log of {state.size} entries")
        bundle_index, offset = divmod(index, TILE_WIDTH)
        if bundle_index == state.size // TILE_WIDTH:
            return state.bundle[offset]
        data = self._storage.read(entries_path(bundle_index))
        if data is None:
            raise TileMissing(f"entry bundle {entries_path(bundle_index)} is missing")
        return decode_bundle(data, TILE_WIDTH)[offset]

    def root_at(self, size: int) -> bytes:
        """Return the root hash of the tree when it had ``size`` entries."""
        return self.reader().root(size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the inclusion proof of entry ``index`` in the tree at ``size``."""
        return self.reader().inclusion_proof(index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Return the consistency proof from ``old_size`` to ``new_size`` (default: now)."""
        return self.reader().consistency_proof(old_size, new_size)

    def tlog_proof(self, index: int, *, extra: bytes | None = None) -> str:
        """Return a C2SP tlog-proof bundle for entry ``index`` under the current checkpoint."""
        state = self._state  # one snapshot, so the proof and the checkpoint agree
        return format_tlog_proof(
            index, self._reader(state).inclusion_proof(index), state.signed_checkpoint, extra=extra
        )

    def read(self, path: str) -> bytes:
        """Return the resource at a tlog-tiles path (checkpoint, tile or bundle) for serving."""
        state = self._state
        if path == CHECKPOINT_PATH:
            return state.signed_checkpoint.encode("utf-8")
        ref = parse_tile_path(path)
        level_size = state.size >> (TILE_HEIGHT * (0 if ref.level == ENTRIES else ref.level))
        full, width = divmod(level_size, TILE_WIDTH)
        # Serve only what a published checkpoint covers; files past it may be left over
        # from an append that crashed before its checkpoint.
        if ref.index * TILE_WIDTH + ref.width > level_size:
            raise TileMissing(f"{path} is beyond the log's size {state.size}")
        if ref.is_partial and ref.index == full and ref.width == width:
            if ref.level == ENTRIES:
                return encode_bundle(state.bundle)
            return state.edges[ref.level]
        data = self._storage.read(ref.path)
        if data is None:
            raise TileMissing(f"{path} is not stored (partial tiles go once the full tile exists)")
        return data

    def _reader(self, state: _State) -> TileReader:
        return TileReader(state.size, lambda ref: self._read_tile(state, ref))

    def _read_tile(self, state: _State, ref: TileRef) -> bytes:
        assert ref.level != ENTRIES
        if ref.is_partial:
            return state.edges[ref.level]
        with self._cache_lock:
            cached = self._cache.get(ref)
            if cached is not None:
                self._cache.move_to_end(ref)
                return cached
        data = self._storage.read(ref.path)
        if data is None:
            raise TileMissing(f"tile {ref.path} is missing from the log's storage")
        with self._cache_lock:
            self._cache[ref] = data
            if len(self._cache) > self._CACHE_TILES:
                self._cache.popitem(last=False)
        return data

    def _commit(
        self, state: _State, writes: dict[str, bytes], completed: Sequence[TileRef]
    ) -> _State:
        # Tiles first, then the checkpoint that points at them; the rename of the checkpoint
        # is the commit. Only then are partial tiles that full tiles replaced removed. The
        # root needs only the partial tiles, all in memory, so nothing is read before writing.
        checkpoint = Checkpoint(self.origin, state.size, self._reader(state).root())
        signed = sign_checkpoint(checkpoint, self._signer)
        if writes:
            self._storage.write(writes)
        self._storage.write({CHECKPOINT_PATH: signed.encode("utf-8")})
        for ref in completed:
            self._storage.delete(ref.path + ".p")
        return _State(state.size, state.edges, state.bundle, checkpoint, signed)

    def _load(self, signed: bytes) -> _State:
        try:
            checkpoint = open_checkpoint(signed, self.verifier, origin=self.origin)
        except CheckpointError as err:
            raise TileCorrupt(
                f"the stored checkpoint does not open with this log's key and origin "
                f"{self.origin!r}: {err}",
                reason="tile_log_wrong_key",
            ) from err
        size = checkpoint.size
        edges = []
        level = 0
        while (count := size >> (TILE_HEIGHT * level)) > 0:
            full, width = divmod(count, TILE_WIDTH)
            data = b""
            if width:
                data = self._storage.read(tile_path(level, full, width)) or b""
                if len(data) != HASH_SIZE * width:
                    raise TileCorrupt(
                        f"partial tile {tile_path(level, full, width)} is missing or truncated; "
                        "restore the log directory from backup"
                    )
            edges.append(data)
            level += 1
        bundle: tuple[bytes, ...] = ()
        full, width = divmod(size, TILE_WIDTH)
        if width:
            data = self._storage.read(entries_path(full, width))
            try:
                bundle = tuple(decode_bundle(data or b"", width))
            except BundleMalformed as err:
                raise TileCorrupt(
                    f"entry bundle {entries_path(full, width)} is missing or damaged: {err}"
                ) from err
            if b"".join(leaf_hash(e) for e in bundle) != edges[0]:
                raise TileCorrupt("the partial entry bundle does not match its level-0 tile")
        state = _State(size, tuple(edges), bundle, checkpoint, signed.decode("utf-8"))
        if self._reader(state).root() != checkpoint.root_hash:
            raise TileCorrupt("the stored tiles do not match the signed checkpoint's root hash")
        # Only a log that checks out is touched.
        self._remove_uncommitted_all(size)
        return state

    def _remove_uncommitted_all(self, size: int) -> None:
        # An append that crashed or failed before its checkpoint may have left tiles past the
        # committed edge. Remove them so nothing unpublished lingers to be served later.
        self._remove_uncommitted(ENTRIES, *divmod(size, TILE_WIDTH))
        level = 0
        while self._remove_uncommitted(level, *divmod(size >> (TILE_HEIGHT * level), TILE_WIDTH)):
            level += 1

    def _remove_uncommitted(self, level: int | Literal["entries"], full: int, width: int) -> bool:
        # Tile `full` is the partial one (or not there yet): any full file for it, its partial
        # files wider than `width`, and every tile after it are unpublished.
        removed = False
        for stale_width in range(width + 1, TILE_WIDTH):
            removed |= self._storage.delete(TileRef(level, full, stale_width).path)
        index = full
        while True:
            found = self._storage.delete(TileRef(level, index).path)
            if index > full:
                found |= self._storage.delete(TileRef(level, index).path + ".p")
            removed |= found
            if not found and index > full:
                break
            index += 1
        # Levels above the tree's top hold nothing committed; keep climbing while they
        # held leftovers, and while this level is part of the tree.
        return removed or (level != ENTRIES and (full > 0 or width > 0))


def _empty_state() -> _State:
    # The checkpoint fields are filled in by _commit, which signs the real one.
    placeholder = Checkpoint("-", 0, EMPTY_ROOT)
    return _State(0, (), (), placeholder, "")


def _extend(
    state: _State, entries: Sequence[bytes]
) -> tuple[tuple[bytes, ...], tuple[bytes, ...], dict[str, bytes], list[TileRef]]:
    # Append to copies of the right edge: a full tile is written out and its tree hash moves
    # up one tile level, so each entry costs O(1) hashing amortised, whatever the log size.
    edges = [bytearray(edge) for edge in state.edges]
    bundle = list(state.bundle)
    writes: dict[str, bytes] = {}
    completed: list[TileRef] = []
    changed = {0}
    size = state.size
    for entry in entries:
        entry = bytes(entry)
        bundle.append(entry)
        value, level = leaf_hash(entry), 0
        size += 1
        while True:
            if level == len(edges):
                edges.append(bytearray())
            edges[level] += value
            changed.add(level)
            if len(edges[level]) < HASH_SIZE * TILE_WIDTH:
                break
            index = (size >> (TILE_HEIGHT * (level + 1))) - 1
            full_tile = bytes(edges[level])
            writes[tile_path(level, index)] = full_tile
            completed.append(TileRef(level, index))
            if level == 0:
                writes[entries_path(index)] = encode_bundle(bundle)
                completed.append(TileRef(ENTRIES, index))
                bundle = []
            value = root(_split_hashes(full_tile))
            edges[level] = bytearray()
            level += 1
    for level in sorted(changed):
        width = len(edges[level]) // HASH_SIZE
        if width:
            index = size >> (TILE_HEIGHT * (level + 1))
            writes[tile_path(level, index, width)] = bytes(edges[level])
    if bundle:
        writes[entries_path(size // TILE_WIDTH, len(bundle))] = encode_bundle(bundle)
    return tuple(bytes(edge) for edge in edges), tuple(bundle), writes, completed
