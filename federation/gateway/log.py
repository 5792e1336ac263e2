"""The gateway's transparency log: appends in groups, and serves it per C2SP tlog-tiles.

``GatewayLog`` is a ``TileLog`` in ``<data dir>/log`` whose checkpoints the gateway signs with
its own key (``federation.neighbourhood_log``). ``LogCommitter`` is the only writer: callers
submit an entry with a ``check`` (run in the database transaction before the append; raising
rejects that entry alone) and a ``record`` (run after the append with the entry's index).
Entries that arrive together are appended as one batch under one checkpoint, which is what
makes the gateway's intake fast (one signed checkpoint and one fsync per batch, not per entry).
The log is the record: if the gateway dies between the append and the database commit, the
next start indexes the entries the database lacks (``Gateway`` calls ``reindex``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from federation.errors import FederationError
from federation.gateway.store import GatewayStore
from federation.keys import SigningKey
from federation.neighbourhood_log import (
    MAX_ENTRIES_PER_PAGE,
    LogRangeError,
    checkpoint_signer,
    encode_hashes,
    log_origin,
    parse_index,
)
from federation.tlog.tiles import CHECKPOINT_PATH, DirectoryStorage, TileError, TileLog

log = logging.getLogger(__name__)

LOG_DIR = "log"
MAX_BATCH = 256
IMMUTABLE = "public, max-age=31536000, immutable"


class GatewayLog:
    """The neighbourhood's log of registry versions, requests and answers."""

    def __init__(self, data_dir: str | os.PathLike[str], key: SigningKey) -> None:
        root = Path(data_dir) / LOG_DIR
        root.mkdir(mode=0o700, exist_ok=True)
        self.origin = log_origin(key.kid)
        self.tiles = TileLog(DirectoryStorage(root), checkpoint_signer(key), origin=self.origin)

    @property
    def size(self) -> int:
        """Return the number of entries."""
        return self.tiles.size

    @property
    def signed_checkpoint(self) -> str:
        """Return the current signed checkpoint."""
        return self.tiles.signed_checkpoint

    def entry(self, index: int) -> bytes:
        """Return the exact bytes of entry index."""
        return self.tiles.entry(index)

    def tlog_proof(self, index: int) -> str:
        """Return a C2SP tlog-proof of entry index under the current checkpoint."""
        return self.tiles.tlog_proof(index)

    def check_range(self, index: int, size: int) -> None:
        """Raise LogRangeError unless index < size <= the log's size."""
        if size > self.size:
            raise LogRangeError(
                f"size {size} is beyond the log's {self.size} entries", reason="beyond_log"
            )
        if index >= size:
            raise LogRangeError(f"index {index} is not below size {size}", reason="bad_range")


@dataclass
class _Pending:
    entry: bytes
    check: Callable[[sqlite3.Connection], None]
    record: Callable[[sqlite3.Connection, int], Any]
    future: asyncio.Future[Any] = field(repr=False)


class LogCommitter:
    """Appends entries in groups, each with its database check and record, in one writer."""

    def __init__(
        self,
        gateway_log: GatewayLog,
        store: GatewayStore,
        run: Callable[[Callable[[], Any]], Awaitable[Any]],
    ) -> None:
        self.log = gateway_log
        self.store = store
        self._run = run  # runs a callable on the gateway's single database thread
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.on_failure: Callable[[], None] = lambda: None
        self.on_append: Callable[[], None] = lambda: None  # a new checkpoint to cosign
        self.batches = 0  # appends made, for the benchmark's average batch size
        self.appended = 0

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._loop(), name="gateway-log-committer")

    async def stop(self) -> None:
        """Stop the writer task; entries still queued fail."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(
                    FederationError("the gateway is shutting down", reason="shutting_down")
                )

    async def submit(
        self,
        entry: bytes,
        check: Callable[[sqlite3.Connection], None],
        record: Callable[[sqlite3.Connection, int], Any],
    ) -> Any:
        """Check, append and record one entry; return what record returned."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(bytes(entry), check, record, future))
        return await future

    async def _loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await self._run(functools.partial(self._commit, batch))
            except Exception as err:
                # The append or the commit failed: nothing of this batch was recorded.
                log.exception("log append of %s entries failed", len(batch))
                self.on_failure()
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(
                            FederationError(
                                f"the gateway could not record this: {err}", reason="internal"
                            )
                        )
                continue
            self.on_append()
            for pending, result in zip(batch, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, BaseException):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)

    def _commit(self, batch: list[_Pending]) -> list[Any]:
        # Runs on the database thread: checks, one append, records, one commit.
        results: list[Any] = [None] * len(batch)
        accepted: list[int] = []
        with self.store.transaction() as db:
            for position, pending in enumerate(batch):
                db.execute("SAVEPOINT entry")
                try:
                    pending.check(db)
                except FederationError as err:
                    db.execute("ROLLBACK TO entry")
                    results[position] = err
                else:
                    accepted.append(position)
                db.execute("RELEASE entry")
            if accepted:
                first = self.log.tiles.append_batch(batch[p].entry for p in accepted)
                self.batches += 1
                self.appended += len(accepted)
                for offset, position in enumerate(accepted):
                    results[position] = batch[position].record(db, first + offset)
        return results


def _text(body: str, **headers: str) -> web.Response:
    return web.Response(text=body, content_type="text/plain", charset="utf-8", headers=headers)


class LogRoutes:
    """HTTP routes serving the log: tlog-tiles and JSON entries and proofs."""

    def __init__(
        self,
        gateway_log: GatewayLog,
        entry_keys: Callable[[int, int], Awaitable[dict[int, tuple[str, dict[str, str]]]]],
        run: Callable[[Callable[[], Any]], Awaitable[Any]],
        checkpoint: Callable[[], str] | None = None,
    ) -> None:
        self.log = gateway_log
        # What GET /checkpoint serves: the log's latest, or the latest its witnesses cosigned.
        self._checkpoint = checkpoint or (lambda: gateway_log.signed_checkpoint)
        self._entry_keys = entry_keys
        self._run = run  # tile reads go to a worker thread, never the event loop

    def add_routes(self, app: web.Application) -> None:
        """Register the log's routes."""
        app.router.add_get("/checkpoint", self.handle_checkpoint)
        app.router.add_get("/tile/{path:.+}", self.handle_tile)
        app.router.add_get("/v1/log/entries", self.handle_entries)
        app.router.add_get("/v1/log/proof/inclusion", self.handle_inclusion)
        app.router.add_get("/v1/log/proof/consistency", self.handle_consistency)

    async def handle_checkpoint(self, request: web.Request) -> web.Response:
        """GET /checkpoint: the current signed checkpoint, with any witnesses' cosignatures."""
        return _text(self._checkpoint(), **{"Cache-Control": "no-cache"})

    async def handle_tile(self, request: web.Request) -> web.Response:
        """GET /tile/...: one tile or entry bundle, as tlog-tiles lays them out."""
        path = "tile/" + request.match_info["path"]
        if path == CHECKPOINT_PATH:
            raise web.HTTPNotFound()
        try:
            data = await self._run(functools.partial(self.log.tiles.read, path))
        except TileError as err:
            reason = "not_found" if err.reason in ("tile_missing", "tile_error") else err.reason
            status = 400 if err.reason == "tile_path_invalid" else 404
            return web.json_response(
                {"error": err.message, "reason": reason},
                status=status,
                headers={"Porchlight-Error-Reason": reason},
            )
        partial = ".p/" in path
        headers = {"Cache-Control": "no-cache" if partial else IMMUTABLE}
        return web.Response(body=data, content_type="application/octet-stream", headers=headers)

    async def handle_entries(self, request: web.Request) -> web.Response:
        """GET /v1/log/entries?start=&end=: entries with their kind and signer key."""
        size = self.log.size
        start = parse_index(request.query.get("start"), "start")
        end = parse_index(request.query.get("end"), "end", default=min(size, start + 256))
        if end < start or end - start > MAX_ENTRIES_PER_PAGE:
            raise LogRangeError(
                f"ask for 1 to {MAX_ENTRIES_PER_PAGE} entries: start <= end <= start + "
                f"{MAX_ENTRIES_PER_PAGE}",
                reason="bad_range",
            )
        if end > size:
            raise LogRangeError(
                f"end {end} is beyond the log's {size} entries", reason="beyond_log"
            )

        def read() -> list[bytes]:
            return [self.log.entry(index) for index in range(start, end)]

        entries = await self._run(read)
        keys = await self._entry_keys(start, end)
        items = []
        for index, entry in zip(range(start, end), entries, strict=True):
            kind, jwk = keys.get(index, ("unknown", {}))
            items.append({"index": index, "kind": kind, "jws": entry.decode("ascii"), "jwk": jwk})
        return web.json_response({"size": size, "entries": items})

    async def handle_inclusion(self, request: web.Request) -> web.Response:
        """GET /v1/log/proof/inclusion?index=&size=: an RFC 9162 inclusion proof."""
        size = parse_index(request.query.get("size"), "size", default=self.log.size)
        index = parse_index(request.query.get("index"), "index")
        self.log.check_range(index, size)
        hashes = await self._run(functools.partial(self.log.tiles.inclusion_proof, index, size))
        return web.json_response({"index": index, "size": size, "hashes": encode_hashes(hashes)})

    async def handle_consistency(self, request: web.Request) -> web.Response:
        """GET /v1/log/proof/consistency?old=&new=: an RFC 9162 consistency proof."""
        new = parse_index(request.query.get("new"), "new", default=self.log.size)
        old = parse_index(request.query.get("old"), "old")
        if new > self.log.size:
            raise LogRangeError(f"new {new} is beyond the log's size", reason="beyond_log")
        if old > new:
            raise LogRangeError(f"old {old} is larger than new {new}", reason="bad_range")
        hashes = await self._run(functools.partial(self.log.tiles.consistency_proof, old, new))
        return web.json_response({"old": old, "new": new, "hashes": encode_hashes(hashes)})


def run_in(executor: Executor) -> Callable[[Callable[[], Any]], Awaitable[Any]]:
    """Return a function that runs a callable in an executor from the event loop."""

    async def run(fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, fn)

    return run
