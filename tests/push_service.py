"""A real RFC 8030 push service on 127.0.0.1, for the Web Push tests.

It plays both a browser's push service and the browser: `subscribe()` makes a subscription as
PushManager.subscribe() would (a fresh P-256 key pair and a 16-byte auth secret, RFC 8291), and
each push it takes must carry a valid RFC 8292 VAPID Authorization header (an ES256 JWT signed
by the expected application server key, `aud` the endpoint's origin, `exp` within 24 h) and an
aes128gcm body that it decrypts with the subscription's private key and auth secret (http_ece).
A push that fails any check is refused with 400 or 401 and kept in `refused`.

    with PushService(vapid_public_key=hub_key) as push:
        sub = push.subscribe("phone")          # the JSON a browser would post to the hub
        ...
        push.wait_for("phone", 1)              # the decrypted payloads, in order

`answer(name, *statuses)` makes the next pushes to one subscription fail with those statuses
(410 for an expired subscription, 500 for a broken service), `fail_until_released` until the
test says, and `hang_until_released` answers nothing until then (then 503); every push is
counted in `hits`.
The service runs its own event loop in a thread, so sync and async tests both use it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import http_ece
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

HOST = "127.0.0.1"


def b64url(data: bytes) -> str:
    """Encode bytes as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Decode unpadded base64url."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """One subscription's secrets, as only the browser holds them."""

    name: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    endpoint: str
    received: list[dict] = field(default_factory=list)
    hits: int = 0
    statuses: list[int] = field(default_factory=list)
    failing: tuple[int, threading.Event] | None = None
    hanging: threading.Event | None = None

    def subscription(self) -> dict:
        """Return the PushSubscription JSON a browser posts to the application server."""
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}}


class PushService:
    """An RFC 8030 push service that checks VAPID and decrypts every payload it takes."""

    def __init__(self, vapid_public_key: str | None = None) -> None:
        self.vapid_public_key = vapid_public_key
        self.browsers: dict[str, Browser] = {}
        self.refused: list[str] = []
        self.url = ""
        self._changed = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- the browser's side ----------------------------------------------------------------

    def subscribe(self, name: str) -> dict:
        """Make a subscription as a browser would; return the JSON it posts to the hub."""
        browser = Browser(name, ec.generate_private_key(ec.SECP256R1()), os.urandom(16),
                          f"{self.url}/push/{name}-{b64url(os.urandom(9))}")
        self.browsers[name] = browser
        return browser.subscription()

    def answer(self, name: str, *statuses: int) -> None:
        """Answer the next pushes to this subscription with these statuses, then 201 again."""
        self.browsers[name].statuses.extend(statuses)

    def fail_until_released(self, name: str, status: int) -> threading.Event:
        """Answer every push to this subscription with `status` until the event is set."""
        released = threading.Event()
        self.browsers[name].failing = (status, released)
        return released

    def hang_until_released(self, name: str) -> threading.Event:
        """Answer no push to this subscription until the event is set (a stalled service)."""
        released = threading.Event()
        self.browsers[name].hanging = released
        return released

    def wait_for(self, name: str, count: int, timeout: float = 60.0) -> list[dict]:
        """Wait until this subscription has received `count` payloads; return them."""
        browser = self.browsers[name]
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(browser.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{name} received {len(browser.received)} pushes, not "
                                         f"{count}; refused: {self.refused}")
                self._changed.wait(left)
            return list(browser.received)

    def wait_for_hits(self, name: str, count: int, timeout: float = 60.0) -> int:
        """Wait until this subscription has been pushed to `count` times (taken or not)."""
        browser = self.browsers[name]
        deadline = time.monotonic() + timeout
        with self._changed:
            while browser.hits < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{name} was pushed to {browser.hits} times, not {count}")
                self._changed.wait(left)
            return browser.hits

    # -- the push service --------------------------------------------------------------------

    async def _push(self, request: web.Request) -> web.Response:
        path = request.path
        browser = next((b for b in self.browsers.values()
                        if urlsplit(b.endpoint).path == path), None)
        if browser is None:
            return web.Response(status=404, text="no such subscription")
        body = await request.read()
        with self._changed:
            browser.hits += 1
            self._changed.notify_all()
        why = self._check_vapid(request, browser)
        if why is None:
            why = self._check_headers(request)
        if why is not None:
            return self._refuse(401 if why.startswith("vapid") else 400, why)
        if browser.hanging is not None and not browser.hanging.is_set():
            await asyncio.get_running_loop().run_in_executor(None, browser.hanging.wait, 60.0)
            return web.Response(status=503, text="stalled")
        if browser.failing is not None and not browser.failing[1].is_set():
            return web.Response(status=browser.failing[0], text="told to fail")
        if browser.statuses:
            status = browser.statuses.pop(0)
            return web.Response(status=status, text="told to fail")
        try:
            plain = http_ece.decrypt(body, private_key=browser.private_key,
                                     auth_secret=browser.auth, version="aes128gcm")
            payload = json.loads(plain)
        except Exception as err:  # any failure to decrypt is the test's finding
            return self._refuse(400, f"payload does not decrypt: {type(err).__name__}: {err}")
        with self._changed:
            browser.received.append(payload)
            self._changed.notify_all()
        return web.Response(status=201, headers={"Location": f"{self.url}/message/{browser.hits}"})

    def _refuse(self, status: int, why: str) -> web.Response:
        with self._changed:
            self.refused.append(why)
            self._changed.notify_all()
        return web.Response(status=status, text=why)

    def _check_headers(self, request: web.Request) -> str | None:
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return f"Content-Encoding is {request.headers.get('Content-Encoding')!r}, not aes128gcm"
        if not request.headers.get("TTL", "").isdigit():
            return "no TTL header (RFC 8030 section 5.2)"
        if request.headers.get("Urgency", "normal") not in ("very-low", "low", "normal", "high"):
            return f"bad Urgency {request.headers.get('Urgency')!r}"
        return None

    def _check_vapid(self, request: web.Request, browser: Browser) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            return f"vapid: Authorization scheme is {scheme!r}, not vapid (RFC 8292)"
        parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        token, key = parts.get("t"), parts.get("k")
        if not token or not key:
            return "vapid: t or k is missing"
        if self.vapid_public_key is not None and key != self.vapid_public_key:
            return "vapid: k is not the hub's VAPID public key"
        raw = unb64url(key)
        if len(raw) != 65 or raw[0] != 4:
            return "vapid: k is not an uncompressed P-256 point"
        jwk = ECKey.import_key({"kty": "EC", "crv": "P-256", "x": b64url(raw[1:33]),
                                "y": b64url(raw[33:])})
        try:
            decoded = jwt.decode(token, jwk, algorithms=["ES256"])
        except (JoseError, ValueError) as err:
            return f"vapid: the JWT does not verify under k: {err}"
        claims = decoded.claims
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(browser.endpoint))
        if claims.get("aud") != origin:
            return f"vapid: aud is {claims.get('aud')!r}, not {origin!r}"
        now = time.time()
        if not isinstance(claims.get("exp"), int) or not now < claims["exp"] <= now + 86400:
            return f"vapid: exp {claims.get('exp')!r} is not within the next 24 hours"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            return f"vapid: sub {claims.get('sub')!r} is not a contact URI"
        return None

    # -- running -----------------------------------------------------------------------------

    def start(self) -> PushService:
        """Start the service on a free port of 127.0.0.1."""
        started = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/push/{name}", self._push)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, HOST, 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]
            self.url = f"http://{HOST}:{port}"

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(serve())
            except BaseException as err:  # handed to the starting thread
                failure.append(err)
                started.set()
                return
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="push-service", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop the service and its thread."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    def __enter__(self) -> PushService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
