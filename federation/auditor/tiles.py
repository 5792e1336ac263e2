"""Rebuild a log from the C2SP tlog-tiles a gateway serves, and find any tile that is wrong.

Pure functions, no I/O: the auditor fetches the tiles and hands them here. The signed
checkpoint's root hash is the only thing trusted. From it, authenticity flows down:

- the root hash depends only on the right edge of the tree (the partial tile of each level);
  the edge is authentic if the served edge tiles, or else the edge tiles recomputed from the
  entry bundles, rebuild the root;
- a full tile at level L is authentic if its tree hash is the hash its parent tile at level
  L+1 holds for it; if the served tile fails and the one recomputed from the entries passes,
  the served tile is the one altered;
- an entry bundle is authentic if its entries' leaf hashes are the authentic level-0 tile.

So one altered tile or bundle is named by its path, whichever it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from federation.tlog.merkle import EMPTY_ROOT, HASH_SIZE, leaf_hash, root
from federation.tlog.tiles import (
    TILE_WIDTH,
    BundleMalformed,
    TileCorrupt,
    TileReader,
    TileRef,
    bundles_for_size,
    decode_bundle,
    tiles_for_size,
)

MAX_LISTED = 5  # entry indices named in one message


@dataclass(frozen=True)
class TileFault:
    """One tile or bundle that is missing or wrong, or a root that nothing rebuilds."""

    path: str | None
    reason: str
    message: str


@dataclass
class RebuiltLog:
    """The entries and tiles that rebuild a checkpoint, and what did not."""

    size: int
    entries: list[bytes | None]
    faults: list[TileFault] = field(default_factory=list)
    tiles: dict[TileRef, bytes] = field(default_factory=dict)
    complete: bool = False  # every hash tile of the tree is known, served or rebuilt

    @property
    def verified(self) -> bool:
        """Tell whether everything served rebuilt the checkpoint."""
        return self.complete and not self.faults

    def reader(self) -> TileReader | None:
        """Return a reader over the authentic tiles, if the whole tree is known."""
        if not self.complete:
            return None
        return TileReader(self.size, self.tiles.__getitem__)


def _hashes(data: bytes) -> list[bytes]:
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def _tile_root(data: bytes) -> bytes:
    return root(_hashes(data))


def _root_of(size: int, tiles: Mapping[TileRef, bytes | None]) -> bytes | None:
    def read(ref: TileRef) -> bytes:
        data = tiles.get(ref)
        if data is None:
            raise KeyError(ref)
        return data

    try:
        return TileReader(size, read).root()
    except (KeyError, TileCorrupt):
        return None


def _missing(ref: TileRef) -> TileFault:
    return TileFault(ref.path, "tile_missing", f"{ref.path}: the gateway does not serve it")


def _listed(indices: list[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:MAX_LISTED])
    more = f" and {len(indices) - MAX_LISTED} more" if len(indices) > MAX_LISTED else ""
    return shown + more


def rebuild_log(
    size: int,
    root_hash: bytes,
    served_tiles: Mapping[TileRef, bytes | None],
    served_bundles: Mapping[TileRef, bytes | None],
) -> RebuiltLog:
    """Check served hash tiles and entry bundles against a checkpoint; name any that is wrong."""
    rebuilt = RebuiltLog(size, [None] * size)
    faults = rebuilt.faults
    if size == 0:
        rebuilt.complete = root_hash == EMPTY_ROOT
        if not rebuilt.complete:
            faults.append(TileFault(None, "root_mismatch", "an empty log has another root hash"))
        return rebuilt

    bundles: dict[int, list[bytes]] = {}
    for ref in bundles_for_size(size):
        data = served_bundles.get(ref)
        if data is None:
            faults.append(_missing(ref))
            continue
        try:
            bundles[ref.index] = decode_bundle(data, ref.width)
        except BundleMalformed as err:
            faults.append(TileFault(
                ref.path, "tile_malformed", f"{ref.path} is not a valid entry bundle: {err}"
            ))

    refs = tiles_for_size(size)
    served: dict[TileRef, bytes] = {}
    for ref in refs:
        data = served_tiles.get(ref)
        if data is None:
            faults.append(_missing(ref))
        elif len(data) != HASH_SIZE * ref.width:
            faults.append(TileFault(
                ref.path, "tile_malformed",
                f"{ref.path} holds {len(data)} bytes, not the {HASH_SIZE * ref.width} of "
                f"{ref.width} hashes",
            ))
        else:
            served[ref] = data

    # The tiles as the entries alone make them, bottom-up (None where a bundle is unusable).
    derived: dict[TileRef, bytes | None] = {}
    for ref in refs:  # tiles_for_size lists level 0 first, then each level above
        if ref.level == 0:
            items = bundles.get(ref.index)
            derived[ref] = b"".join(leaf_hash(e) for e in items) if items is not None else None
            continue
        assert isinstance(ref.level, int)
        children = [derived.get(TileRef(ref.level - 1, ref.index * TILE_WIDTH + i))
                    for i in range(ref.width)]
        derived[ref] = (
            None if any(c is None for c in children)
            else b"".join(_tile_root(c) for c in children if c is not None)
        )

    authentic = rebuilt.tiles
    edges = [ref for ref in refs if ref.is_partial]
    if _root_of(size, served) == root_hash:
        authentic.update({ref: served[ref] for ref in edges})
    elif _root_of(size, derived) == root_hash:
        for ref in edges:
            authentic[ref] = derived[ref]  # type: ignore[assignment]
            if ref in served and served[ref] != derived[ref]:
                faults.append(TileFault(
                    ref.path, "tile_altered",
                    f"{ref.path} is altered: its hashes do not match the entries or the "
                    "signed checkpoint",
                ))
    else:
        differ = [ref.path for ref in edges if served.get(ref) != derived.get(ref)]
        where = f" (the tiles and the entries disagree at {', '.join(differ)})" if differ else ""
        faults.append(TileFault(
            differ[0] if len(differ) == 1 else None, "root_mismatch",
            "neither the hash tiles nor the entry bundles rebuild the signed checkpoint's root "
            f"hash{where}",
        ))

    # Full tiles, top-down: each against the hash its parent holds for it.
    by_level: dict[int, list[TileRef]] = {}
    for ref in refs:
        assert isinstance(ref.level, int)
        by_level.setdefault(ref.level, []).append(ref)
    widths = {(ref.level, ref.index): ref for ref in refs}
    for level in sorted(by_level, reverse=True):
        for ref in by_level[level]:
            if ref.is_partial:
                continue
            parent_ref = widths.get((level + 1, ref.index // TILE_WIDTH))
            parent = authentic.get(parent_ref) if parent_ref is not None else None
            if parent is None:
                continue  # its parent is itself unproven; that one is reported
            offset = (ref.index % TILE_WIDTH) * HASH_SIZE
            expected = parent[offset : offset + HASH_SIZE]
            mine, theirs = served.get(ref), derived.get(ref)
            holder = parent_ref.path  # type: ignore[union-attr]
            if mine is not None and _tile_root(mine) == expected:
                authentic[ref] = mine
            elif theirs is not None and _tile_root(theirs) == expected:
                authentic[ref] = theirs
                if mine is not None:
                    faults.append(TileFault(
                        ref.path, "tile_altered",
                        f"{ref.path} is altered: its hashes do not match the entries or the "
                        f"hash {holder} holds for it",
                    ))
            elif mine is not None:
                faults.append(TileFault(
                    ref.path, "tile_altered",
                    f"{ref.path} does not match the hash {holder} holds for it, and "
                    "neither do the entries under it",
                ))

    # Entry bundles, against the authentic level-0 tiles.
    for ref in bundles_for_size(size):
        items = bundles.get(ref.index)
        if items is None:
            continue
        first = ref.index * TILE_WIDTH
        level0 = authentic.get(TileRef(0, ref.index, ref.width))
        if level0 is None:
            rebuilt.entries[first : first + len(items)] = items  # unproven, but all there is
            continue
        wrong = []
        for offset, (entry, expected) in enumerate(zip(items, _hashes(level0), strict=True)):
            if leaf_hash(entry) == expected:
                rebuilt.entries[first + offset] = entry
            else:
                wrong.append(first + offset)
        if wrong:
            noun = "entry" if len(wrong) == 1 else "entries"
            verb = "does" if len(wrong) == 1 else "do"
            faults.append(TileFault(
                ref.path, "tile_altered",
                f"{ref.path} is altered: {noun} {_listed(wrong)} {verb} not match the signed "
                "checkpoint",
            ))

    rebuilt.complete = all(ref in authentic for ref in refs)
    return rebuilt
