"""A slow, meddling HTTP/1.1 proxy on 127.0.0.1, for testing clients against the real network.

``SlowProxy`` forwards every request to an upstream server as is, and every answer back in
small pieces (512 bytes by default) with a short pause after each, so a client sees a body
arrive over many reads, as it does over a slow or congested link. It can also rewrite the
body of chosen answers (flip one byte of one tile, say), fixing up ``Content-Length``.

It understands just enough HTTP/1.1 to find where each message ends (``Content-Length``,
chunked transfer coding, or the end of the connection), keeps connections alive as the
client asks, and after a ``101 Switching Protocols`` (a WebSocket) pipes bytes both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

Rewrite = Callable[[str, str, int, bytes], bytes | None]
MAX_HEAD = 64 * 1024


class _Closed(Exception):
    """The peer closed the connection between messages."""


@dataclass
class _Message:
    start_line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value.strip()
        return None

    def encode(self) -> bytes:
        lines = [self.start_line]
        lines += [key + b": " + value for key, value in self.headers]
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial:
            raise _Closed() from err
        raise
    if len(head) > MAX_HEAD:
        raise ValueError("message head too long")
    start_line, *lines = head[:-4].split(b"\r\n")
    headers = []
    for line in lines:
        key, _, value = line.partition(b":")
        headers.append((key.strip(), value.strip()))
    return start_line, headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            # Trailers, if any, end with an empty line.
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _read_message(
    reader: asyncio.StreamReader, *, response_to: bytes | None = None
) -> _Message:
    start_line, headers = await _read_head(reader)
    message = _Message(start_line, headers, b"")
    length = message.header(b"content-length")
    chunked = (message.header(b"transfer-encoding") or b"").lower() == b"chunked"
    if response_to is not None:
        status = int(start_line.split()[1])
        if response_to == b"HEAD" or status in (101, 204, 304) or 100 <= status < 200:
            return message
    if chunked:
        message.body = await _read_chunked(reader)
        # Re-sent with a Content-Length instead.
        message.headers = [(k, v) for k, v in headers if k.lower() != b"transfer-encoding"]
        message.headers.append((b"Content-Length", str(len(message.body)).encode()))
    elif length is not None:
        message.body = await reader.readexactly(int(length))
    elif response_to is not None:
        message.body = await reader.read()  # delimited by the end of the connection
    return message


@dataclass
class SlowProxy:
    """Forward to ``upstream`` (an http:// URL); answer in ``piece``-byte pieces."""

    upstream: str
    piece: int = 512
    pause: float = 0.001
    rewrite: Rewrite | None = None
    requests: list[tuple[str, str]] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)
    largest: int = 0  # the largest answer forwarded, in bytes
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        """Return the proxy's own base URL."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def start(self) -> SlowProxy:
        """Listen on a free port of 127.0.0.1."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        parts = urlsplit(self.upstream)
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port)
            while True:
                try:
                    request = await _read_message(reader)
                except _Closed:
                    return
                method, target = request.start_line.split()[:2]
                self.requests.append((method.decode(), target.decode()))
                up_writer.write(request.encode())
                await up_writer.drain()
                response = await _read_message(up_reader, response_to=method)
                status = int(response.start_line.split()[1])
                if self.rewrite is not None and status != 101:
                    changed = self.rewrite(method.decode(), target.decode(), status, response.body)
                    if changed is not None:
                        self.rewritten.append(target.decode())
                        response.body = changed
                        response.headers = [
                            (k, v) for k, v in response.headers if k.lower() != b"content-length"
                        ]
                        response.headers.append((b"Content-Length", str(len(changed)).encode()))
                data = response.encode()
                self.largest = max(self.largest, len(data))
                await self._send_slowly(writer, data)
                if status == 101:
                    await self._pipe(reader, writer, up_reader, up_writer)
                    return
                closing = b"close" in (response.header(b"connection") or b"").lower()
                if closing or response.header(b"content-length") is None:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:
            # stop() cancels; end quietly (asyncio's server callback reports a cancelled task).
            return
        finally:
            self._tasks.discard(task)
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
                    with contextlib.suppress(Exception):
                        await w.wait_closed()

    async def _send_slowly(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        for start in range(0, len(data), self.piece):
            writer.write(data[start : start + self.piece])
            await writer.drain()
            if self.pause:
                await asyncio.sleep(self.pause)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, slow: bool) -> None:
            while data := await src.read(64 * 1024):
                if slow:
                    await self._send_slowly(dst, data)
                else:
                    dst.write(data)
                    await dst.drain()

        tasks = [
            asyncio.create_task(copy(reader, up_writer, False), name="proxy-up"),
            asyncio.create_task(copy(up_reader, writer, True), name="proxy-down"),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def slow_proxy(upstream: str, **options: object) -> AsyncIterator[SlowProxy]:
    """Run a SlowProxy in front of upstream for the block."""
    proxy = await SlowProxy(upstream, **options).start()  # type: ignore[arg-type]
    try:
        yield proxy
    finally:
        await proxy.stop()
