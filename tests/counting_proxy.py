"""A TCP proxy on 127.0.0.1 that counts what clients send to a device behind it.

Put it in front of a real peer (an ONVIF camera, say) to count how often a client dials it
and how many HTTP requests it makes, whatever the client logs:

    with CountingProxy(camera.host, camera.onvif_port) as proxy:
        ...  # point the client at proxy.host:proxy.port
        assert proxy.connections == 1

One thread moves the bytes of every connection both ways; leaving the block closes them all.
"""

from __future__ import annotations

import re
import selectors
import socket
import threading

HOST = "127.0.0.1"
# An HTTP/1.x request line; SOAP and JSON bodies never hold one.
REQUEST_LINE = re.compile(rb"(?:^|\r\n)[A-Z]+ [^ \r\n]+ HTTP/1\.[01]\r\n")
CHUNK = 64 * 1024


class CountingProxy:
    """Forward every connection to (host, port), counting connections and HTTP requests."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.host = HOST
        self.port = 0
        self.connections = 0
        self.requests = 0
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._tails: dict[socket.socket, bytes] = {}  # the end of what each client sent
        self._thread = threading.Thread(target=self._run, name="counting-proxy", daemon=True)

    def __enter__(self) -> CountingProxy:
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._wake_writer.send(b"x")
        self._thread.join(timeout=10)
        for sock in [self._listener, self._wake_reader, self._wake_writer, *self._pairs]:
            sock.close()
        self._selector.close()

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select():
                sock = key.fileobj
                if sock is self._wake_reader:
                    return
                if sock is self._listener:
                    self._accept()
                elif sock in self._pairs:
                    self._forward(sock)

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        self.connections += 1
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()  # the client sees the refusal it would have seen at the device
            return
        self._pairs[client], self._pairs[upstream] = upstream, client
        self._tails[client] = b""
        for sock in (client, upstream):
            self._selector.register(sock, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        peer = self._pairs[sock]
        try:
            data = sock.recv(CHUNK)
            if data:
                peer.sendall(data)
        except OSError:
            data = b""
        if not data:
            self._close(sock, peer)
            return
        if sock in self._tails:
            # Count request lines, including one split across two reads.
            seen = self._tails[sock] + data
            self.requests += len(REQUEST_LINE.findall(seen)) - len(
                REQUEST_LINE.findall(self._tails[sock]))
            self._tails[sock] = seen[-512:]

    def _close(self, *socks: socket.socket) -> None:
        for sock in socks:
            self._selector.unregister(sock)
            self._pairs.pop(sock, None)
            self._tails.pop(sock, None)
            sock.close()
