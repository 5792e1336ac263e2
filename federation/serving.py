"""Serving HTTP to strangers: aiohttp with a request deadline, connection caps and quiet logs.

The gateway, the hub's web server and its LAN server all listen through ``HardenedServer``:

- **Idle and header-read timeout** (``idle_timeout_s``): aiohttp's keep-alive timer. It starts
  when a connection opens and again when each answer ends, and closes the connection unless a
  whole request head has arrived by then; bytes that trickle in do not move it. So the one
  aiohttp feature is both the keep-alive timeout and the header-read timeout, and a slowloris
  client that sends a header line every few seconds is closed at the deadline. A TLS handshake
  gets the same time.
- **A cap per client address** (``max_per_address``; an IPv6 client counts by its /64, which
  one host usually holds whole) and **a descriptor reserve** (``reserve_fds``): a connection
  over either is answered at once with ``503`` and a JSON error, ``Retry-After`` and
  ``Connection: close``, and closed, before aiohttp sees it (over TLS: closed with no answer).
- **Quiet logs**: a malformed request is one debug line, not aiohttp's error with a traceback.

The accept loop is written by hand (``_GuardedSite``): asyncio's own server accepts in batches
of up to ``backlog`` connections and creates every transport before a protocol learns the
peer's address, so refusing there would still spend a descriptor per connection of a burst,
and running out makes asyncio log an error and stop accepting for a whole second. Here each
connection is accepted, checked and refused one at a time, so a refusal holds a descriptor for
microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import resource
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)

# Out of descriptors or kernel memory: wait a moment for connections to close, then accept again.
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_PAUSE_S = 0.05
_WARN_EVERY_S = 60.0
_SERVER_LOG = logging.getLogger("aiohttp.server")


@dataclass(frozen=True)
class ServerLimits:
    """How long a connection may idle and how many one client address may hold."""

    idle_timeout_s: float = 20.0
    max_per_address: int = 64
    # Descriptors kept free for the program's own files (SQLite, tiles, clips) and for
    # refusing: a connection whose descriptor number reaches the limit minus this is refused.
    reserve_fds: int = 64

    def __post_init__(self) -> None:
        if not self.idle_timeout_s > 0:
            raise ValueError("idle_timeout_s must be positive")
        if self.max_per_address < 1:
            raise ValueError("max_per_address must be at least 1")
        if self.reserve_fds < 0:
            raise ValueError("reserve_fds must not be negative")


def client_key(address: Any) -> str:
    """Return what a client is counted by: its IPv4 address, or its IPv6 /64."""
    host = address[0] if isinstance(address, tuple) and address else str(address)
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return str(host)
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network((ip, 64), strict=False))
    return str(ip)


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; return the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


class QuietServerLog(logging.LoggerAdapter):
    """aiohttp's server logger, with a client's malformed request as one debug line."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log as aiohttp asked, except a malformed request: one line at debug level."""
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            # The client's fault, and on a public port an everyday one: no stack trace, and
            # no request bytes (they may hold someone's credentials).
            if self.isEnabledFor(logging.DEBUG):
                detail = (str(exc.message).strip().splitlines() or [""])[0][:200]
                self.logger.debug(
                    "refused a malformed request (%s %s): %s", exc.code, type(exc).__name__, detail
                )
            return
        super().log(level, msg, *args, **kwargs)


def _refusal(reason: str, message: str, retry_after: int) -> bytes:
    body = json.dumps({"error": message, "reason": reason}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {retry_after}\r\n"
        f"Porchlight-Error-Reason: {reason}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, which gives its place back when it closes."""

    def __init__(self, inner: asyncio.Protocol, release: Any) -> None:
        self._inner = inner
        self._release = release

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._inner.connection_lost(exc)
        finally:
            self.release()

    def release(self) -> None:
        """Give the connection's place back (once)."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _GuardedSite(web.BaseSite):
    """A TCP site that accepts one connection at a time and refuses those over the caps."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        limits: ServerLimits,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 1024,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host or None
        self._port = port
        self._limits = limits
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._open: dict[str, int] = {}
        self._refused = 0
        self._warned_at = -_WARN_EVERY_S
        self.port = port

    @property
    def name(self) -> str:
        """Return the site's URL, as aiohttp names sites."""
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host or '0.0.0.0'}:{self.port}"

    @property
    def open_connections(self) -> int:
        """Return how many connections this site holds open."""
        return sum(self._open.values())

    async def start(self) -> None:
        """Listen on every address the host resolves to and start accepting."""
        await super().start()
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        seen = set()
        try:
            for family, kind, proto, _, address in infos:
                if (family, address) in seen:
                    continue
                seen.add((family, address))
                sock = socket.socket(family, kind, proto)
                self._sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if self._port == 0 and len(self._sockets) > 1:
                    # Port 0 on a name with two addresses (localhost): one port for both.
                    address = (address[0], self._sockets[0].getsockname()[1], *address[2:])
                try:
                    sock.bind(address)
                except OSError as err:
                    # The words asyncio's create_server uses, so callers see one message.
                    raise OSError(
                        err.errno,
                        f"error while attempting to bind on address {address!r}: "
                        f"{(err.strerror or str(err)).lower()}",
                    ) from None
                sock.listen(self._backlog)
                sock.setblocking(False)
        except BaseException:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()
            raise
        if self._sockets:
            self.port = self._sockets[0].getsockname()[1]
        for sock in self._sockets:
            self._spawn(self._accept_loop(sock), "accept")

    async def stop(self) -> None:
        """Stop accepting and close the listening sockets."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        await super().stop()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"serving-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, address = await loop.sock_accept(sock)
            except OSError as err:
                # A connection that died in the queue (ECONNABORTED): on to the next one.
                # Anything else, running out of descriptors above all: pause, never spin.
                if err.errno != errno.ECONNABORTED:
                    what = "out of descriptors" if err.errno in _EXHAUSTED else "accept failed"
                    self._warn("%s (%s); accepting again in a moment", what, err)
                    await asyncio.sleep(_PAUSE_S)
                continue
            self._admit(conn, address)

    def _admit(self, conn: socket.socket, address: Any) -> None:
        key = client_key(address)
        refusal = self._refusal(key, conn.fileno())
        if refusal is not None:
            self._refuse(conn, refusal)
            return
        self._open[key] = self._open.get(key, 0) + 1
        server = self._runner.server
        assert server is not None
        protocol = _Counted(server(), lambda: self._release(key))
        self._spawn(self._connect(conn, protocol), "connect")

    def _refusal(self, key: str, fileno: int) -> bytes | None:
        limits = self._limits
        if self._open.get(key, 0) >= limits.max_per_address:
            return _refusal(
                "too_many_connections",
                f"your address already has {limits.max_per_address} connections open here, "
                "the most allowed; close some, or reuse them, and retry",
                1,
            )
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        # Descriptors are handed out lowest first, so this one's number counts those in use.
        if soft != resource.RLIM_INFINITY and fileno >= soft - limits.reserve_fds:
            return _refusal(
                "server_busy", "the server has as many connections open as it can; retry soon", 5
            )
        return None

    def _refuse(self, conn: socket.socket, answer: bytes) -> None:
        with contextlib.closing(conn):
            if self._ssl_context is None:
                # The request is not read: the answer goes first and the client reads it
                # whenever it sends. A short answer fits the socket buffer, so this never waits.
                with contextlib.suppress(OSError):
                    conn.setblocking(False)
                    conn.send(answer)
        self._refused += 1
        self._warn("refusing connections over the limits (%s refused so far)", self._refused)

    def _warn(self, message: str, *args: Any) -> None:
        # Once a minute at most: a flood must not turn into a flood of log lines.
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            log.warning(message, *args)

    def _release(self, key: str) -> None:
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)

    async def _connect(self, conn: socket.socket, protocol: _Counted) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self._ssl_context,
                ssl_handshake_timeout=self._limits.idle_timeout_s if self._ssl_context else None,
            )
        except (OSError, ssl.SSLError, TimeoutError, asyncio.CancelledError) as err:
            # A failed or cancelled handshake: the connection never reached aiohttp.
            conn.close()
            protocol.release()
            if isinstance(err, asyncio.CancelledError):
                raise
            log.debug("a connection ended before its first request: %s", err)


class HardenedServer:
    """Serve an aiohttp application on host:port within ServerLimits, while in async with."""

    def __init__(
        self,
        app: web.Application,
        host: str | None,
        port: int,
        *,
        limits: ServerLimits | None = None,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 1024,
        **runner_kwargs: Any,
    ) -> None:
        self.limits = limits or ServerLimits()
        self.host = host
        self.port = port
        self._ssl_context = ssl_context
        self._backlog = backlog
        runner_kwargs.setdefault("logger", QuietServerLog(_SERVER_LOG, {}))
        self.runner = web.AppRunner(
            app,
            handle_signals=False,
            keepalive_timeout=self.limits.idle_timeout_s,
            **runner_kwargs,
        )
        self._site: _GuardedSite | None = None

    @property
    def open_connections(self) -> int:
        """Return how many connections the server holds open."""
        return self._site.open_connections if self._site is not None else 0

    async def __aenter__(self) -> HardenedServer:
        await self.runner.setup()
        try:
            self._site = _GuardedSite(
                self.runner,
                self.host,
                self.port,
                self.limits,
                ssl_context=self._ssl_context,
                backlog=self._backlog,
            )
            await self._site.start()
        except BaseException:
            await self.runner.cleanup()
            raise
        # Port 0 picks a free port; report the real one.
        self.port = self._site.port
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.runner.cleanup()
