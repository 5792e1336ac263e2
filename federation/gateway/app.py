"""The neighbourhood gateway service: the v1 HTTP API, streams and housekeeping.

``Gateway`` is an async context manager that owns the key, the database (behind one writer
thread) and the live streams; ``Gateway.make_app()`` builds the aiohttp application.
docs/protocol.md is the specification of every route here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

from federation.cells import neighbour_cells
from federation.errors import FederationError, MalformedMessage, ReplayDetected
from federation.gateway.announcements import AnnouncementService
from federation.gateway.attachments import AttachmentService
from federation.gateway.errors import (
    HubBlocked,
    InviteInvalid,
    OutOfRange,
    error_response,
    http_status,
)
from federation.gateway.invites import split_invite
from federation.gateway.photo_relay import PHOTO_TYPES
from federation.gateway.requests import RequestService
from federation.gateway.settings import GatewaySettings
from federation.gateway.store import GatewayStore, Member, Replay
from federation.gateway.stream import (
    CLOSE_BLOCKED,
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_REPLACED,
    StreamConnection,
    StreamHub,
)
from federation.hop import (
    HopReplay,
    HopSignature,
    HopUnknownKey,
    check_fresh,
    signature_from_headers,
    verify_signed_request,
)
from federation.jws import verify_message
from federation.keys import KeySet, SigningKey, import_public_jwk, load_private_key, thumbprint
from federation.schemas import TYP_ALERT, TYP_REGISTRATION, AlertClaims, RegistrationClaims
from federation.wire import (
    MAX_ACK_BYTES,
    PROTOCOL_VERSION,
    encode_announcement_frame,
    encode_frame,
    parse_ack,
    parse_join_request,
    parse_since,
    parse_token_body,
)

log = logging.getLogger(__name__)

KEY_FILE = "gateway.key"
DB_FILE = "gateway.sqlite"
STREAM_BATCH = 256
STREAM_MAX_QUEUE = 1024
HEARTBEAT_S = 30.0

_T = TypeVar("_T")


@dataclass(frozen=True)
class AcceptedAlert:
    """An alert the gateway stored and queued."""

    id: str
    recipients: list[tuple[str, int]]


@functools.lru_cache(maxsize=4096)
def _keyset(jwk_json: str) -> KeySet:
    # Importing a JWK validates it and costs more than a dict lookup; members are few and
    # stable, and a KeySet is never changed after it is built here.
    return KeySet([json.loads(jwk_json)])


@functools.lru_cache(maxsize=4096)
def _hop_key(jwk_json: str) -> Any:
    return import_public_jwk(json.loads(jwk_json))


@functools.lru_cache(maxsize=4096)
def _disk(cell: str, rings: int) -> frozenset[str]:
    # Every alert needs the disk around its cell twice; cells and rings are few.
    return frozenset(neighbour_cells(cell, rings))


def _json_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _slug(text: str) -> str:
    return "_".join(text.lower().split()) or "http_error"


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Any]) -> Any:
    try:
        return await handler(request)
    except FederationError as err:
        status = http_status(err)
        log.info("%s %s rejected: %s %s", request.method, request.path, status, err.reason)
        return error_response(
            status,
            err.message,
            err.reason,
            field=getattr(err, "field", ""),
            retry_after=getattr(err, "retry_after", None),
        )
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, f"request body is too large: {exc.text}", "too_large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason, _slug(exc.reason))
    except Exception:
        # A bug, not bad input: say so in the same shape, and keep the details in the log.
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal error; see the gateway's log", "internal")


class Gateway:
    """One neighbourhood's gateway: key, state, HTTP routes and live streams."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        settings: GatewaySettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings
        self.clock = clock
        self.public_url = settings.public_url
        self.streams = StreamHub()
        self.key: SigningKey | None = None
        self.store: GatewayStore | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.requests: RequestService | None = None
        self.announcements: AnnouncementService | None = None
        self.attachments: AttachmentService | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stream_tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Gateway:
        self.key = load_private_key(self.data_dir / KEY_FILE)
        self.store = GatewayStore(self.data_dir / DB_FILE)
        # One writer thread: SQLite work never blocks the event loop, and never interleaves.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-db")
        self.requests = RequestService(self)
        await self.requests.start()
        self.announcements = AnnouncementService(self)
        self.attachments = AttachmentService(self)
        task = asyncio.create_task(self._housekeeping(), name="gateway-housekeeping")
        self._tasks.add(task)
        log.info("gateway %s (%s) ready", self.settings.name, self.key.kid)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.streams.close_all(CLOSE_GOING_AWAY, "gateway shutting down")
        for task in list(self._tasks) + list(self._stream_tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._stream_tasks, return_exceptions=True)
        self._tasks.clear()
        if self.requests is not None:
            await self.requests.stop()
        if self.attachments is not None:
            self.attachments.close()
        if self.store is not None and self._executor is not None:
            # Acks only save redelivery; losing the last few on a failing shutdown is harmless.
            with contextlib.suppress(OSError, RuntimeError, sqlite3.Error):
                await self._db(self.store.record_acks, self.streams.take_acks())
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self.store is not None:
            self.store.close()

    @property
    def kid(self) -> str:
        """Return the gateway's kid: the neighbourhood id, every message's aud."""
        assert self.key is not None, "use the gateway inside async with"
        return self.key.kid

    def set_public_url(self, url: str) -> None:
        """Set the URL hubs reach this gateway at, once the listening port is known."""
        self.public_url = url.rstrip("/")

    async def _db(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def _housekeeping(self) -> None:
        settings = self.settings
        last_purge = 0.0
        while True:
            await asyncio.sleep(settings.check_interval_s)
            try:
                await self._check_once(purge=self.clock() - last_purge >= settings.purge_interval_s)
            except (OSError, RuntimeError, sqlite3.Error) as err:
                log.warning("gateway housekeeping failed, will retry: %s", err)
                continue
            if self.clock() - last_purge >= settings.purge_interval_s:
                last_purge = self.clock()

    async def _check_once(self, *, purge: bool) -> None:
        assert self.store is not None
        blocked = await self._db(self.store.blocked)
        for hub in self.streams.hubs() & blocked:
            log.info("closing the stream of blocked hub %s", hub)
            await self.streams.close_hub(hub, CLOSE_BLOCKED, "blocked")
        await self._db(self.store.record_acks, self.streams.take_acks())
        if purge:
            counts = await self.purge()
            if any(counts.values()):
                log.info("purged %s", counts)

    async def purge(self) -> dict[str, int]:
        """Delete what is past its time now: alerts and their photos, announcements, clips."""
        assert self.store is not None
        now = self.clock()
        counts = await self._db(self.store.purge, now=now)
        if self.attachments is not None:
            counts["photos"] = await self.attachments.sweep()
        if self.requests is not None:
            counts["clips"] = await self.requests.purge(now)
        return counts

    # -- application ------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """Build the aiohttp application serving the v1 API."""
        app = web.Application(middlewares=[_errors], client_max_size=self.settings.max_body_bytes)
        app.router.add_get("/v1/info", self.handle_info)
        app.router.add_post("/v1/join", self.handle_join)
        app.router.add_post("/v1/register", self.handle_register)
        app.router.add_post("/v1/alerts", self.handle_alert)
        app.router.add_get("/v1/stream", self.handle_stream)
        assert self.requests is not None
        assert self.announcements is not None and self.attachments is not None
        self.requests.add_routes(app)
        self.announcements.add_routes(app)
        self.attachments.add_routes(app)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.streams.close_all(CLOSE_GOING_AWAY, "gateway shutting down")

    def info(self) -> dict[str, Any]:
        """Return the gateway's public identity as GET /v1/info answers it."""
        assert self.key is not None
        return {
            "v": PROTOCOL_VERSION,
            "gateway": {
                "kid": self.key.kid,
                "jwk": dict(self.key.public_jwk),
                "name": self.settings.name,
                "url": self.public_url or "",
            },
        }

    def _target_uri(self, request: web.Request) -> str:
        # The URL the hub must have signed: this gateway's own public URL, never the Host
        # header, so a request signed for another server cannot be replayed here.
        return (self.public_url or self._presented_origin(request)) + request.raw_path

    @staticmethod
    def _presented_origin(request: web.Request) -> str:
        # The origin the request names itself, only to explain a mismatch (or before the
        # public URL is known). Built from the raw Host header: yarl raises on some hosts,
        # and a bad Host is the client's problem, which the signature check then reports.
        return f"{request.scheme}://{request.headers.get('Host', '')}"

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise MalformedMessage(
                f"request body is {request.content_length} bytes; the limit is {limit} bytes",
                reason="too_large",
            )
        return await request.read()

    async def authenticate(self, request: web.Request, body: bytes | None) -> Member:
        """Verify a request's hop signature and return the member who sent it."""
        # body None: the caller checks the streamed body against the Content-Digest itself.
        assert self.store is not None
        now = self.clock()
        sig = self._fresh_signature(request, now)
        member = await self._db(self.store.member_by_hop_kid, sig.keyid)
        if member is None:
            raise HopUnknownKey(
                f"keyid {sig.keyid} is not the hop key of any member; join with an invite "
                "code first",
            )
        self._verify_hop(request, body, sig, member.hop_jwk, now)
        if member.blocked:
            raise HubBlocked(
                "this hub is blocked by the gateway's operator; ask them why",
            )
        await self._admit(sig, member.kid, now)
        return member

    def _fresh_signature(self, request: web.Request, now: float) -> HopSignature:
        sig = signature_from_headers(request.headers)
        check_fresh(
            sig,
            now=now,
            max_age=self.settings.hop_max_age_s,
            max_future=self.settings.hop_max_future_s,
        )
        return sig

    def _verify_hop(
        self,
        request: web.Request,
        body: bytes | None,
        sig: HopSignature,
        hop_jwk: dict[str, str],
        now: float,
    ) -> None:
        # body None: see authenticate.
        verify_signed_request(
            sig,
            _hop_key(_json_dumps(hop_jwk)),
            method=request.method,
            target_uri=self._target_uri(request),
            headers=request.headers,
            body=body,
            now=now,
            max_age=self.settings.hop_max_age_s,
            presented_uri=self._presented_origin(request) + request.raw_path,
        )

    async def _admit(self, sig: HopSignature, kid: str | None, now: float) -> None:
        assert self.store is not None
        try:
            await self._db(
                self.store.admit,
                nonce=Replay(sig.keyid, sig.nonce, sig.created + self.settings.hop_max_age_s),
                kid=kid,
                limit=self.settings.requests_per_minute,
                window_s=60.0,
                now=now,
            )
        except ReplayDetected as err:
            raise HopReplay(
                "this signed request was already received (its nonce was used); "
                "sign every request afresh",
            ) from err

    @staticmethod
    def _member_view(member: Member) -> dict[str, str]:
        return {"kid": member.kid, "cell": member.cell, "hop_kid": member.hop_kid}

    # -- routes -----------------------------------------------------------------------------

    async def handle_info(self, request: web.Request) -> web.Response:
        """GET /v1/info: the gateway's kid, public JWK and name."""
        return web.json_response(self.info())

    async def handle_join(self, request: web.Request) -> web.Response:
        """POST /v1/join: become a member with a one-time invite code."""
        assert self.store is not None
        body = await self._read_body(request)
        join = parse_join_request(body)
        now = self.clock()
        try:
            invite_id, secret = split_invite(join.code)
        except ValueError as err:
            raise InviteInvalid(f"invite code is not well formed: {err}") from err
        hub_jwk = join.jwk.model_dump(exclude_none=True)
        message = verify_message(
            join.registration,
            typ=TYP_REGISTRATION,
            trusted=_keyset(_json_dumps(hub_jwk)),
            audience=self.kid,
            now=now,
        )
        claims = message.model
        assert isinstance(claims, RegistrationClaims)
        hop_jwk = claims.hop_key.model_dump(exclude_none=True)
        hop_kid = thumbprint(hop_jwk)
        sig = self._fresh_signature(request, now)
        if sig.keyid != hop_kid:
            raise HopUnknownKey(
                "a join must be signed with the hop key its registration names",
            )
        self._verify_hop(request, body, sig, hop_jwk, now)
        await self._admit(sig, None, now)
        member = await self._db(
            self.store.add_member,
            kid=message.kid,
            jwk={k: hub_jwk[k] for k in ("kty", "crv", "x")},
            hop_kid=hop_kid,
            hop_jwk={k: hop_jwk[k] for k in ("kty", "crv", "x")},
            cell=claims.cell,
            invite_id=invite_id,
            invite_secret=secret,
            replay=Replay(message.kid, claims.jti, claims.exp),
            now=now,
        )
        log.info("hub %s joined in cell %s", member.kid, member.cell)
        answer = self.info()["gateway"]
        return web.json_response(
            {"gateway": answer, "member": self._member_view(member), "since": member.last_seq},
            status=201,
        )

    async def handle_register(self, request: web.Request) -> web.Response:
        """POST /v1/register: a member updates its cell or hop key."""
        assert self.store is not None
        body = await self._read_body(request)
        member = await self.authenticate(request, body)
        token = parse_token_body(body, what="registration")
        now = self.clock()
        message = verify_message(
            token,
            typ=TYP_REGISTRATION,
            trusted=_keyset(_json_dumps(member.jwk)),
            audience=self.kid,
            now=now,
        )
        claims = message.model
        assert isinstance(claims, RegistrationClaims)
        hop_jwk = claims.hop_key.model_dump(exclude_none=True)
        updated = await self._db(
            self.store.update_registration,
            member.kid,
            cell=claims.cell,
            hop_kid=thumbprint(hop_jwk),
            hop_jwk={k: hop_jwk[k] for k in ("kty", "crv", "x")},
            replay=Replay(message.kid, claims.jti, claims.exp),
            now=now,
        )
        log.info("hub %s registered cell %s", updated.kid, updated.cell)
        return web.json_response({"member": self._member_view(updated)})

    async def handle_alert(self, request: web.Request) -> web.Response:
        """POST /v1/alerts: accept a member's signed alert and relay it to hubs in range."""
        body = await self._read_body(request)
        member = await self.authenticate(request, body)
        token = parse_token_body(body, what="alert")
        accepted = await self.accept_alert(member, token)
        return web.json_response({"id": accepted.id}, status=202)

    async def accept_alert(self, member: Member, token: str) -> AcceptedAlert:
        """Verify a member's alert, store it, queue it for hubs in range and push it live."""
        assert self.store is not None
        now = self.clock()
        author_jwk = _json_dumps(member.jwk)
        message = verify_message(
            token, typ=TYP_ALERT, trusted=_keyset(author_jwk), audience=self.kid, now=now
        )
        claims = message.model
        assert isinstance(claims, AlertClaims)
        rings = self.settings.relay_rings
        if claims.cell not in _disk(member.cell, rings):
            raise OutOfRange(
                f"alert cell {claims.cell} is more than {rings} ring(s) from the cell this hub "
                f"registered ({member.cell}); re-register if the hub has moved",
            )
        alert_id = hashlib.sha256(message.raw).hexdigest()
        recipients = await self._db(
            self.store.add_alert,
            alert_id=alert_id,
            author=member.kid,
            token=message.token,
            cell=claims.cell,
            category=claims.category,
            replay=Replay(member.kid, claims.jti, claims.exp),
            expires_at=min(float(claims.exp), now + self.settings.alert_ttl_s),
            recipient_cells=_disk(claims.cell, rings),
            limit=self.settings.alerts_per_hour,
            window_s=3600.0,
            now=now,
            # Who may fetch its photos from this gateway (federation/gateway/attachments.py).
            record_recipients=any(a.type in PHOTO_TYPES for a in claims.attachments),
        )
        live = self.streams.offer(
            recipients,
            lambda seq: encode_frame(seq, "alert", alert_id, message.token, author_jwk),
        )
        log.info(
            "alert %s from %s queued for %s hubs (%s live)",
            alert_id[:12],
            member.kid,
            len(recipients),
            live,
        )
        return AcceptedAlert(id=alert_id, recipients=recipients)

    async def _load_frames(self, hub: str, after: int) -> list[tuple[int, str]]:
        assert self.store is not None and self.requests is not None
        store, requests, now = self.store, self.requests, self.clock()
        # Requests travel with a checkpoint the witnesses cosigned: wait (bounded) for the
        # round that covers what is logged now. Without witnesses this returns at once.
        await requests.witnessing.wait_published(
            requests.log.size, self.settings.witness_timeout_s * 2 + 1
        )

        def load() -> list[tuple[int, str]]:
            rows = store.deliveries_after(hub, after, limit=STREAM_BATCH, now=now)
            frames = [
                (row.seq, encode_frame(row.seq, "alert", row.alert_id, row.token, row.author_jwk))
                for row in rows
                if row.kind == "alert"
            ]
            frames += [
                (row.seq, encode_announcement_frame(row.seq, row.alert_id, row.token))
                for row in rows
                if row.kind == "announcement"
            ]
            # Requests get a tlog-proof against the checkpoint of the moment they are sent.
            frames += requests.request_frames([row for row in rows if row.kind == "request"])
            return sorted(frames)

        return await self._db(load)

    async def _send_stream(self, conn: StreamConnection) -> None:
        try:
            await conn.run(self._load_frames)
        except (ConnectionError, RuntimeError) as err:
            # The socket went away under us; the hub reconnects and resumes from its ack.
            log.info("stream to hub %s ended: %s", conn.hub, err)
        except Exception:
            log.exception("stream sender for hub %s failed", conn.hub)
        finally:
            if not conn.ws.closed:
                with contextlib.suppress(OSError, RuntimeError):
                    await conn.ws.close(code=CLOSE_GOING_AWAY, message=b"stream ended")

    async def handle_stream(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/stream: a member's WebSocket; push its queue from since, collect acks."""
        assert self.store is not None
        body = await self._read_body(request)
        member = await self.authenticate(request, body)
        values = request.query.getall("since", [])
        if len(values) > 1:
            raise MalformedMessage("since given more than once", reason="bad_since")
        since = parse_since(values[0] if values else None)
        if since > member.last_seq:
            # The hub claims messages this gateway never numbered: its state belongs to
            # another gateway or this one was restored from an old backup.
            raise MalformedMessage(
                f"since {since} is ahead of this hub's last sequence {member.last_seq}; "
                "reset the hub's stream position to 0",
                reason="since_ahead",
            )
        if (
            len(self.streams) >= self.settings.max_connections
            and member.kid not in self.streams.hubs()
        ):
            raise web.HTTPServiceUnavailable(reason="Too Many Streams")
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=MAX_ACK_BYTES * 4)
        await ws.prepare(request)
        conn = StreamConnection(
            member.kid, ws, since, batch=STREAM_BATCH, max_queue=STREAM_MAX_QUEUE
        )
        old = self.streams.attach(conn)
        if old is not None:
            with contextlib.suppress(OSError, RuntimeError):
                await old.ws.close(code=CLOSE_REPLACED, message=b"replaced by a newer stream")
        sender = asyncio.create_task(self._send_stream(conn), name=f"stream-{member.kid[:8]}")
        self._stream_tasks.add(sender)
        sender.add_done_callback(self._stream_tasks.discard)
        log.info("hub %s streaming from seq %s", member.kid, since)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    await ws.close(code=CLOSE_POLICY, message=b"send text acks only")
                    break
                try:
                    conn.ack(parse_ack(msg.data))
                except (FederationError, ValueError) as err:
                    log.info("hub %s sent a bad ack: %s", member.kid, err)
                    await ws.close(code=CLOSE_POLICY, message=str(err)[:120].encode())
                    break
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError, RuntimeError):
                await sender
            self.streams.detach(conn)
            if conn.acked > conn.flushed_ack:
                await self._db(self.store.record_acks, {conn.hub: conn.acked})
            log.info(
                "hub %s stream closed at seq %s (acked %s)", member.kid, conn.last_sent, conn.acked
            )
        return ws
