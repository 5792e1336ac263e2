"""Real notification peers on loopback: a webhook receiver that checks the HMAC on its own.

The signature check here is written from the documented format (docs/integrations.md), not
imported from the plugin, so a plugin that signs something else fails these tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Hit:
    """One request the receiver got."""

    at: float
    status: int
    body: bytes
    headers: dict
    accepted: bool

    def json(self) -> dict:
        """Return the JSON body."""
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver; `behave(n)` answers the n-th request (from 1): a status, or 'hang'."""

    secret: bytes
    behave: object = None
    hits: list[Hit] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        """Return the URL the hub posts to."""
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def accepted(self) -> list[dict]:
        """Return the bodies of the requests it accepted (signed right, answered 2xx)."""
        return [h.json() for h in self.hits if h.accepted and 200 <= h.status < 300]

    def signed_right(self, request: web.Request, body: bytes) -> bool:
        """Check the signature as the docs describe it, and the timestamp within 5 minutes."""
        stamp = request.headers.get("X-Porchlight-Timestamp", "")
        given = request.headers.get("X-Porchlight-Signature", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return False
        expected = hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(given, "sha256=" + expected)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        number = len(self.hits) + 1
        answer = self.behave(number) if self.behave else 200
        accepted = self.signed_right(request, body)
        status = answer if accepted or answer == "hang" else 401
        self.hits.append(Hit(time.monotonic(), status if status != "hang" else 0, body,
                             dict(request.headers), accepted))
        self.arrived.set()
        if answer == "hang":
            await asyncio.sleep(3600)
        return web.Response(status=status, text="ok" if status < 300 else "no")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                    shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def wait_for(self, count: int, timeout: float = 60.0) -> list[Hit]:
        """Wait until `count` requests arrived (a generous limit for a busy machine)."""
        deadline = time.monotonic() + timeout
        while len(self.hits) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.hits)} of {count} requests arrived")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), 0.5)
            except TimeoutError:
                pass
        return self.hits


def closed_port() -> int:
    """Return a loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
