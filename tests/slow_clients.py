"""Idle and slowloris clients for the servers' tests: real TCP connections from 127.0.0.0/8.

A test opens many connections from several loopback addresses (127.0.0.2, 127.0.0.3, ...),
some that send nothing (idle) and some that send a request line and then one header line
every ``drip_s`` seconds and never finish the head (slowloris). Each connection records what
the server answered and when the server closed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

READ_LIMIT = 4096


@dataclass
class Connection:
    """One attacking connection and what became of it."""

    kind: str  # "idle" or "slowloris"
    address: str
    opened: float = 0.0
    closed: float | None = None
    answer: bytes = b""
    drips: int = 0
    error: str = ""

    @property
    def refused(self) -> bool:
        """Tell whether the server answered 503 at once."""
        return self.answer.startswith(b"HTTP/1.1 503 ")

    @property
    def lifetime(self) -> float | None:
        """Return how long the server kept the connection open."""
        return None if self.closed is None else self.closed - self.opened

    def refusal(self) -> tuple[dict[str, str], dict]:
        """Return the refusal's headers (lower-case names) and JSON body."""
        head, _, body = self.answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        headers = {k.strip().lower(): v.strip() for k, _, v in (li.partition(":") for li in lines)}
        return headers, json.loads(body)


@dataclass
class Flood:
    """Connections held against one server until it closes them."""

    connections: list[Connection] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, kind: str) -> list[Connection]:
        """Return the connections of one kind."""
        return [c for c in self.connections if c.kind == kind]

    async def wait_closed(self, timeout: float) -> None:
        """Wait until the server has closed every connection, at most timeout seconds."""
        done, pending = await asyncio.wait(self.tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                raise task.exception()

    async def stop(self) -> None:
        """Close every connection still open."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _hold(conn: Connection, host: str, port: int, drip_s: float, started: list[int],
                total: int, opened: asyncio.Event) -> None:
    # Before the connect: the server's deadline starts when it accepts, which is after this
    # (and maybe before this busy task runs again), so lifetimes are never under-counted.
    conn.opened = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(conn.address, 0))
    except OSError as err:
        conn.error = f"connect: {err!r}"
        raise
    finally:
        started[0] += 1
        if started[0] == total:
            opened.set()

    async def read() -> None:
        while len(conn.answer) < READ_LIMIT:
            try:
                chunk = await reader.read(READ_LIMIT)
            except ConnectionError as err:
                conn.error = repr(err)
                break
            if not chunk:
                break
            conn.answer += chunk
        conn.closed = time.monotonic()

    reading = asyncio.create_task(read())
    try:
        if conn.kind == "slowloris":
            # A request line, then header lines that never end the head.
            line = b"GET /checkpoint HTTP/1.1\r\n"
            while not reading.done():
                try:
                    writer.write(line)
                    await writer.drain()
                except ConnectionError:
                    break
                conn.drips += 1
                line = f"X-Drip-{conn.drips}: {'a' * 8}\r\n".encode()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(reading), drip_s)
        await reading
    finally:
        reading.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def open_flood(host: str, port: int, plan: dict[str, dict[str, int]], *,
               drip_s: float = 1.0) -> Flood:
    """Start plan = {kind: {source address: count}} connections; they open in the background."""
    flood = Flood()
    total = sum(sum(per.values()) for per in plan.values())
    started = [0]
    for kind, per_address in plan.items():
        for address, count in per_address.items():
            for _ in range(count):
                conn = Connection(kind, address)
                flood.connections.append(conn)
                flood.tasks.append(asyncio.create_task(
                    _hold(conn, host, port, drip_s, started, total, flood.opened),
                    name=f"flood-{kind}"))
    return flood


def addresses(first: int, count: int) -> list[str]:
    """Return count loopback addresses from 127.0.0.FIRST."""
    return [f"127.0.0.{n}" for n in range(first, first + count)]
