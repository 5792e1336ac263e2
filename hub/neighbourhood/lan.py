"""LAN neighbours: advertise and browse `_porchlight._tcp.local.` with zeroconf, and exchange
alerts hub to hub with no gateway (an apartment building, a community mesh).

A LAN peer's key is fetched from the address the peer advertised and must match the kid in its
mDNS record; it is never taken from a message. LAN alerts are marked as such in the feed: mDNS
proves only that a device on this network holds the key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import socket
from collections.abc import Callable

import aiohttp
from aiohttp import web
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from federation.bodies import BodyTooLarge, read_body, read_error_body
from federation.delivery import Delivery, TransientError
from federation.errors import FederationError
from federation.jws import split_compact, verify_message
from federation.keys import KeySet, SigningKey, import_public_jwk, thumbprint
from federation.mdns import SERVICE, Advertised, parse_service, service_info
from federation.replay import ReplayStore
from federation.schemas import TYP_ALERT
from federation.serving import HardenedServer, ServerLimits
from federation.tlog.cosignature import CosignatureVerifier
from hub.neighbourhood.alerts import LAN_NEIGHBOUR, OWN, store_alert
from hub.neighbourhood.attachments import load_attachment, store_attachment
from hub.neighbourhood.witness import (
    HubWitness,
    pin_lan_witness,
    pinned_lan_witnesses,
    sign_binding,
    verify_binding,
)
from hub.timeutil import iso

log = logging.getLogger(__name__)

# The `aud` of alerts between hubs of one LAN: a fixed, kid-shaped neighbourhood id (the
# base64url SHA-256 of "porchlight-lan-v1"), since a LAN has no gateway whose kid could serve.
LAN_AUDIENCE = base64.urlsafe_b64encode(hashlib.sha256(b"porchlight-lan-v1").digest()).rstrip(
    b"=").decode()
MAX_BODY = 64 * 1024
# LAN neighbours make a few short calls each; 16 connections from one address is plenty
# (federation/serving.py: the timeout is also the header-read deadline).
LAN_LIMITS = ServerLimits(idle_timeout_s=20.0, max_per_address=16)
MAX_KEY_BYTES = 4096  # {"kid", "jwk"} of one Ed25519 key, and its witness key and signature


class LanDirectory:
    """Browse `_porchlight._tcp.local.` and keep the peers found, with their verified keys."""

    def __init__(self, zc: AsyncZeroconf, own_kid: str | None = None) -> None:
        self.zc = zc
        self.own_kid = own_kid
        self.peers: dict[str, Advertised] = {}
        self.keys: dict[str, dict] = {}
        self.browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Start browsing."""
        self.browser = AsyncServiceBrowser(self.zc.zeroconf, SERVICE,
                                           handlers=[self._on_change])

    async def stop(self) -> None:
        """Stop browsing and the lookups in flight."""
        if self.browser is not None:
            await self.browser.async_cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_change(self, zeroconf, service_type: str, name: str,
                   state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            for kid in list(self.peers):
                if kid[:16] in name:
                    self.peers.pop(kid, None)
            return
        task = asyncio.ensure_future(self._resolve(service_type, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self.zc.zeroconf, 3000):
            return
        peer = parse_service(info)
        if peer is None or peer.kid == self.own_kid:
            return
        self.peers[peer.kid] = peer
        log.info("LAN: found %s %s at %s:%s", peer.role, peer.kid[:12], peer.host, peer.port)

    async def key_of(self, kid: str, session: aiohttp.ClientSession) -> dict | None:
        """Return a LAN hub's public JWK, fetched from its advertised address and checked."""
        if kid in self.keys:
            return self.keys[kid]
        fetched = await self._fetch_keys(kid, session)
        if fetched is None:
            return None
        self.keys[kid] = fetched[0]
        return fetched[0]

    async def witness_of(self, kid: str, session: aiohttp.ClientSession
                         ) -> CosignatureVerifier | None:
        """Return a LAN hub's witness key, if it serves one signed by its advertised hub key."""
        fetched = await self._fetch_keys(kid, session)
        if fetched is None or "witness" not in fetched[1]:
            return None
        jwk, body = fetched
        verifier = verify_binding(jwk, body["witness"], body.get("witness_signature"))
        if verifier is None:
            log.warning("LAN: %s served a witness key its hub key did not sign",
                        self.peers[kid].origin)
        return verifier

    async def _fetch_keys(self, kid: str, session: aiohttp.ClientSession
                          ) -> tuple[dict, dict] | None:
        """Fetch a LAN hub's /lan/v1/key; return its checked JWK and the whole body, or None."""
        peer = self.peers.get(kid)
        if peer is None or peer.role != "hub":
            return None
        try:
            async with session.get(f"{peer.origin}/lan/v1/key") as reply:
                if reply.status != 200:
                    return None
                body = json.loads(await read_body(reply, MAX_KEY_BYTES))
            jwk = body["jwk"]
            import_public_jwk(jwk)
        except (aiohttp.ClientError, TimeoutError, BodyTooLarge, ValueError, FederationError,
                KeyError, TypeError) as err:
            log.info("LAN: could not fetch the keys of %s: %s", peer.origin, err)
            return None
        if thumbprint(jwk) != kid:  # the device must hold the key it advertised
            log.warning("LAN: %s served a key that is not its advertised kid", peer.origin)
            return None
        return jwk, body


class LanService:
    """Advertise this hub, browse its LAN neighbours, receive and deliver LAN alerts."""

    def __init__(self, hub, key: SigningKey, host: str, port: int, interfaces: list[str],
                 replay: ReplayStore, *, limits: ServerLimits = LAN_LIMITS) -> None:
        self.hub = hub
        self.key = key
        self.host = host
        self.port = port
        self.interfaces = interfaces or None
        self.replay = replay
        self.server: HardenedServer | None = None
        self.zc: AsyncZeroconf | None = None
        self.directory: LanDirectory | None = None
        self.session: aiohttp.ClientSession | None = None
        self.delivery = Delivery(max_attempts=3)
        self.info: AsyncServiceInfo | None = None
        self.limits = limits
        # The gateway checkpoint this hub saw last, shared with LAN neighbours (gossip.py).
        self.checkpoint: Callable[[], str | None] = lambda: None
        # This hub's witness of its gateway's log, when [lan] witness = true (witness.py).
        self.witness: HubWitness | None = None

    def app(self) -> web.Application:
        """Build the LAN API: the hub's public key and an inbox for alerts."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get("/lan/v1/key", self._key)
        app.router.add_post("/lan/v1/alerts", self._receive)
        app.router.add_get("/lan/v1/attachments/{sha256}", self._attachment)
        app.router.add_get("/lan/v1/checkpoint", self._checkpoint)
        # C2SP tlog-witness: the gateway submits its checkpoints here (the URL it is given is
        # this server's, http://ADDRESS:PORT).
        app.router.add_post("/add-checkpoint", self._add_checkpoint)
        return app

    async def _add_checkpoint(self, request: web.Request) -> web.Response:
        """Cosign the gateway's checkpoint if consistent with the last one this hub cosigned."""
        if self.witness is None:
            return web.Response(status=404, text="this hub does not witness a log\n")
        body = await request.read()
        answer = await asyncio.to_thread(self.witness.add_checkpoint, body)
        if answer.status != 200:
            log.warning("witness: refused a checkpoint with %s: %s", answer.status,
                        answer.body.strip()[:100])
        return web.Response(status=answer.status, text=answer.body,
                            content_type=answer.content_type)

    async def learn_witnesses(self) -> None:
        """Pin the witness key of each LAN hub seen that serves one and is not pinned yet."""
        pinned = await asyncio.to_thread(pinned_lan_witnesses, self.hub.db)
        for kid, peer in list(self.directory.peers.items()):
            if peer.role != "hub" or kid in pinned:
                continue
            verifier = await self.directory.witness_of(kid, self.session)
            if verifier is not None:
                await asyncio.to_thread(pin_lan_witness, self.hub.db, kid, verifier)

    async def _checkpoint(self, request: web.Request) -> web.Response:
        """Serve the gateway checkpoint this hub saw last (public log data), for gossip."""
        return web.json_response({"checkpoint": await asyncio.to_thread(self.checkpoint)})

    async def __aenter__(self) -> LanService:
        self.server = HardenedServer(self.app(), self.host, self.port, limits=self.limits)
        await self.server.__aenter__()
        self.port = self.server.port
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.zc = AsyncZeroconf(interfaces=self.interfaces, ip_version=IPVersion.V4Only)
        address = self.host if self.host not in ("0.0.0.0", "") else primary_address()
        record = service_info(self.key.kid, "hub", address, self.port)
        self.info = AsyncServiceInfo(record.type, record.name, addresses=record.addresses,
                                     port=record.port, properties=record.properties)
        await self.zc.async_register_service(self.info)
        self.directory = LanDirectory(self.zc, own_kid=self.key.kid)
        await self.directory.start()
        log.info("LAN: advertising hub %s on %s:%d", self.key.kid[:12], address, self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.directory is not None:
            await self.directory.stop()
        if self.zc is not None:
            if self.info is not None:
                await self.zc.async_unregister_service(self.info)
            await self.zc.async_close()
        if self.session is not None:
            await self.session.close()
        if self.server is not None:
            await self.server.__aexit__(*exc)

    async def _key(self, request: web.Request) -> web.Response:
        answer = {"kid": self.key.kid, "jwk": self.key.public_jwk}
        if self.witness is not None:
            # The hub key vouches for the witness key, so neighbours pin it to this hub.
            answer["witness"] = self.witness.vkey
            answer["witness_signature"] = sign_binding(self.key, self.witness.vkey)
        return web.json_response(answer)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            token = body.decode("ascii").strip()
        except UnicodeDecodeError:
            return _refuse(400, "the body is not a compact JWS", "malformed")
        kid = _kid_of(token)
        jwk = await self.directory.key_of(kid, self.session) if kid else None
        if jwk is None:
            return _refuse(403, "not a hub this hub has seen on the LAN", "unknown_peer")
        try:
            message = verify_message(token, typ=TYP_ALERT, trusted=KeySet([jwk]),
                                     audience=LAN_AUDIENCE, now=self.hub.clock().timestamp(),
                                     replay_store=self.replay)
        except FederationError as err:
            return _refuse(400, err.message, err.reason)
        stored = await asyncio.to_thread(store_alert, self.hub.db, token, message, via="lan",
                                         verification=LAN_NEIGHBOUR)
        if stored:
            self.hub.emit({"kind": "alert", "via": "lan", "category": message.claims["category"],
                           "summary": f"LAN alert ({message.claims['category']})"})
            for attachment in message.claims.get("attachments", []):
                await self._fetch_attachment(kid, attachment)
        return web.json_response({"accepted": True}, status=202)

    async def _attachment(self, request: web.Request) -> web.Response:
        """Serve a photo this hub shared in one of its alerts that has not expired."""
        digest = request.match_info["sha256"]
        shared = await asyncio.to_thread(_shared_attachments, self.hub.db, self.hub.clock())
        data = load_attachment(self.hub.data, digest) if digest in shared else None
        if data is None:
            return _refuse(404, "no such attachment", "not_found")
        return web.Response(body=data, content_type=shared[digest])

    async def _fetch_attachment(self, kid: str, attachment: dict) -> None:
        """Fetch an attachment from the author's hub and keep it if it matches its hash."""
        peer = self.directory.peers.get(kid)
        if peer is None:
            return
        try:
            async with self.session.get(
                    f"{peer.origin}/lan/v1/attachments/{attachment['sha256']}") as reply:
                if reply.status != 200:
                    return
                # More than the signed alert promised is not the attachment.
                data = await read_body(reply, attachment["size"])
        except (aiohttp.ClientError, TimeoutError, BodyTooLarge) as err:
            log.info("LAN: could not fetch an attachment from %s: %s", peer.origin, err)
            return
        if len(data) == attachment["size"] and \
                hashlib.sha256(data).hexdigest() == attachment["sha256"]:
            store_attachment(self.hub.data, data, attachment["type"])
        else:
            log.warning("LAN: %s served an attachment that does not match its hash", peer.origin)

    async def broadcast(self, token: str, skip: set[str] = frozenset()) -> dict[str, str]:
        """Send an alert to every hub on the LAN not in `skip`; return each peer's outcome."""
        outcome: dict[str, str] = {}
        peers = [p for p in self.directory.peers.values() if p.role == "hub" and p.kid not in skip]
        for peer in peers:
            async def attempt(peer=peer) -> None:
                try:
                    async with self.session.post(f"{peer.origin}/lan/v1/alerts",
                                                 data=token.encode(),
                                                 headers={"Content-Type": "application/jose"}) as r:
                        if r.status >= 500 or r.status == 403:
                            # 403: the peer has not found us by mDNS yet; it will.
                            raise TransientError(f"{peer.origin} answered {r.status}")
                        if r.status >= 400:
                            error = (await read_error_body(r)).decode("utf-8", "replace")
                            raise FederationError(f"{peer.origin} refused: {error}")
                except aiohttp.ClientError as err:
                    raise TransientError(f"{peer.origin}: {err}") from err
            try:
                await self.delivery.send(peer.origin, attempt)
                outcome[peer.kid] = "delivered"
            except FederationError as err:
                outcome[peer.kid] = str(err)
        return outcome


def _shared_attachments(db, now) -> dict[str, str]:
    """Return {sha256: media type} of the attachments of this hub's own unexpired alerts."""
    rows = db.execute("select attachments from alerts where verification = ? and expires > ?",
                      [OWN, iso(now)]).fetchall()
    return {a["sha256"]: a["type"] for (text,) in rows for a in json.loads(text or "[]")}


def _refuse(status: int, message: str, reason: str) -> web.Response:
    return web.json_response({"error": message, "reason": reason}, status=status)


def _kid_of(token: str) -> str | None:
    """Read the kid a token names (unverified: only to look the key up in the LAN directory)."""
    try:
        kid = split_compact(token).header.get("kid")
    except FederationError:
        return None
    return kid if isinstance(kid, str) and len(kid) <= 64 else None


def lan_url(config) -> str:
    """Return the URL of this hub's LAN server, as a neighbour or a gateway reaches it."""
    host, _, port = config.lan.listen.rpartition(":")
    if host in ("0.0.0.0", ""):
        host = primary_address()
    return f"http://{host}:{port}"


def primary_address() -> str:
    """Return this machine's address on its main network (what a 0.0.0.0 server is at)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent by connect()
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"
