"""Per-hub WebSocket streams: push queued messages in sequence order, collect acks.

Every hub has one queue in the database, numbered 1, 2, 3... by the gateway. A connection
starts from the sequence the hub says it has stored (``since``), backfills from the database,
then takes new messages straight from memory while it keeps up. Whenever it falls behind (a
gap, or too many waiting in memory) it backfills from the database again, so memory per hub
stays bounded and nothing is skipped or sent twice on one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

# WebSocket close codes (RFC 6455 reserves 4000-4999 for applications).
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_BLOCKED = 4403
CLOSE_REPLACED = 4409

Loader = Callable[[str, int], Awaitable[list[tuple[int, str]]]]


class StreamConnection:
    """One hub's live stream: an ordered in-memory window over its database queue."""

    def __init__(
        self, hub: str, ws: web.WebSocketResponse, since: int, *, batch: int, max_queue: int
    ) -> None:
        self.hub = hub
        self.ws = ws
        self.last_queued = since
        self.last_sent = since
        self.acked = since
        self.flushed_ack = since
        self._batch = batch
        self._max_queue = max_queue
        self._queue: deque[tuple[int, str]] = deque()
        self._needs_backfill = True
        self._wake = asyncio.Event()

    def offer(self, seq: int, frame: str) -> None:
        """Take a newly queued message if it is the next one, else schedule a backfill."""
        if seq <= self.last_queued:
            return
        if seq == self.last_queued + 1 and len(self._queue) < self._max_queue:
            self._queue.append((seq, frame))
            self.last_queued = seq
        else:
            self._needs_backfill = True
        self._wake.set()

    def ack(self, seq: int) -> None:
        """Record the hub's acknowledgement of every message up to seq."""
        if seq > self.last_sent:
            raise ValueError(f"ack {seq} is ahead of the last message sent ({self.last_sent})")
        self.acked = max(self.acked, seq)

    async def run(self, load: Loader) -> None:
        """Send messages in order until the socket closes."""
        while not self.ws.closed:
            if self._queue:
                seq, frame = self._queue.popleft()
                await self.ws.send_str(frame)
                self.last_sent = seq
                continue
            if self._needs_backfill:
                self._needs_backfill = False
                rows = await load(self.hub, self.last_queued)
                for seq, frame in rows:
                    if seq > self.last_queued:
                        self._queue.append((seq, frame))
                        self.last_queued = seq
                if len(rows) >= self._batch:
                    self._needs_backfill = True
                continue
            self._wake.clear()
            await self._wake.wait()


class StreamHub:
    """Every live stream of a gateway, at most one per hub."""

    def __init__(self) -> None:
        self._connections: dict[str, StreamConnection] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def hubs(self) -> set[str]:
        """Return the kids of hubs with a live stream."""
        return set(self._connections)

    def attach(self, conn: StreamConnection) -> StreamConnection | None:
        """Make conn the hub's live stream; return the one it replaces, if any."""
        old = self._connections.get(conn.hub)
        self._connections[conn.hub] = conn
        return old

    def detach(self, conn: StreamConnection) -> None:
        """Forget conn if it is still the hub's live stream."""
        if self._connections.get(conn.hub) is conn:
            del self._connections[conn.hub]

    def offer(self, recipients: list[tuple[str, int]], frame_for: Callable[[int], str]) -> int:
        """Hand a new message to every recipient with a live stream; return how many."""
        live = 0
        for hub, seq in recipients:
            conn = self._connections.get(hub)
            if conn is not None:
                conn.offer(seq, frame_for(seq))
                live += 1
        return live

    def take_acks(self) -> dict[str, int]:
        """Return acknowledgements not yet written to the database, and mark them written."""
        acks = {}
        for conn in self._connections.values():
            if conn.acked > conn.flushed_ack:
                acks[conn.hub] = conn.acked
                conn.flushed_ack = conn.acked
        return acks

    async def close_hub(self, hub: str, code: int, message: str) -> None:
        """Close a hub's live stream, if it has one."""
        conn = self._connections.get(hub)
        if conn is not None:
            # The peer may already be gone; closing is best effort.
            with contextlib.suppress(OSError, RuntimeError):
                await conn.ws.close(code=code, message=message.encode())

    async def close_all(self, code: int, message: str) -> None:
        """Close every live stream."""
        await asyncio.gather(
            *(self.close_hub(hub, code, message) for hub in list(self._connections)),
            return_exceptions=True,
        )
