"""A hub's side of the v1 gateway protocol: join, register, alerts, the stream, agency requests.

``GatewayClient`` (built on federation.http's ``GatewayHTTP``) makes a member hub's calls, each hop-signed (RFC 9421) with the hub's
hop key, including fetching the registry, consistency proofs, uploading sealed clips and
posting answers (docs/agency-protocol.md). ``GatewayClient.stream`` keeps
one outbound WebSocket (hubs sit behind NAT), reconnects with jittered exponential backoff,
stops trying for a cool-down when the gateway keeps failing (a per-peer circuit breaker, as
in Mastodon's delivery worker), and resumes from the last sequence the hub stored, so the
hub sees every message once and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import aiohttp

from federation.delivery import Delivery
from federation.errors import FederationError, MalformedMessage, SchemaError
from federation.hop import HopSigner, join_url
from federation.http import (
    GatewayHTTP,
    GatewayKeyChanged,
    GatewayRejected,
    GatewayUnavailable,
)
from federation.jws import VerifiedMessage, sign_message, verify_message
from federation.keys import KeySet, SigningKey, parse_pin, thumbprint
from federation.member.requests import ProofWithheld, RequestRejected, consistency_sizes
from federation.neighbourhood_log import LogRangeError, check_request_id
from federation.registry import VerifiedRegistry, verify_registry
from federation.replay import ReplayStore
from federation.schemas import TYP_ALERT, TYP_REGISTRATION
from federation.tlog.note import MAX_NOTE_BYTES
from federation.wire import (
    MAX_ANSWER_BYTES,
    MAX_FRAME_BYTES,
    AlertAnswer,
    AnswerPosted,
    JoinAnswer,
    RegisterAnswer,
    StreamMessage,
    encode_ack,
    parse_answer,
    parse_frame,
)

log = logging.getLogger(__name__)
_M = TypeVar("_M")

# A connection that lived this long was healthy: the next reconnect starts backoff afresh.
STABLE_AFTER_S = 10.0
HEARTBEAT_S = 20.0
# Kinds verify_relayed checks under the key the frame carries. Kinds an agency signs
# ("request", "announcement") carry no key: the hub verifies them under its pinned registry.
KIND_TYPES = {"alert": TYP_ALERT}
_REGISTRY_KINDS = {
    "request": "federation.member.requests.verify_routed_request",
    "announcement": "federation.announcements.verify_announcement",
}
# Alert ids and photo names: lower-case hex SHA-256.
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# WebSocket close codes that mean "stop", not "reconnect" (see federation.gateway.stream).
_FINAL_CLOSE = {4403: "blocked", 4409: "replaced", 1008: "policy"}


class AttachmentCorrupt(FederationError):
    """A photo's bytes are not the ones its alert lists (SHA-256 or size); none were kept."""

    default_reason = "attachment_corrupt"


@dataclass(frozen=True)
class Membership:
    """What a hub keeps after joining: the gateway (pinned) and its own registration."""

    url: str
    gateway_kid: str
    gateway_jwk: dict[str, str]
    gateway_name: str
    hub_kid: str
    hop_kid: str
    cell: str
    since: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict to store in the hub's data directory."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Membership:
        """Rebuild a membership stored with to_dict, checking the pinned key."""
        membership = cls(**data)
        if thumbprint(membership.gateway_jwk) != membership.gateway_kid:
            raise GatewayKeyChanged("stored gateway JWK does not match its pinned kid")
        return membership


def alert_id(token: str) -> str:
    """Return the id the gateway gives an alert: the SHA-256 of its exact JWS text."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def verify_relayed(
    message: StreamMessage,
    *,
    gateway_kid: str,
    now: float,
    replay_store: ReplayStore | None = None,
) -> VerifiedMessage:
    """Verify a relayed message end to end under the author key the gateway vouches for."""
    typ = KIND_TYPES.get(message.kind)
    if message.kind in _REGISTRY_KINDS:
        raise MalformedMessage(
            f"a relayed {message.kind} is signed by an agency and carries no key; verify it "
            f"under the pinned registry with {_REGISTRY_KINDS[message.kind]}",
            reason="unknown_kind",
        )
    if typ is None or message.jwk is None:
        raise MalformedMessage(
            f"cannot verify a relayed {message.kind!r} message", reason="unknown_kind"
        )
    # The gateway vouches for its members' keys: it cannot alter an alert, but a dishonest
    # gateway could invent a member. docs/protocol.md says what that means for hubs.
    return verify_message(
        message.jws,
        typ=typ,
        trusted=KeySet([message.jwk]),
        audience=gateway_kid,
        now=now,
        replay_store=replay_store,
    )


async def _maybe_await(value: Any) -> None:
    if inspect.isawaitable(value):
        await value


@dataclass(frozen=True)
class AnswerReceipt:
    """Where the gateway's log put a hub's answer, and its tlog-proof (unverified here)."""

    log_index: int
    checkpoint: str
    proof: str | None = None


class GatewayClient(GatewayHTTP):
    """A hub's connection to its neighbourhood gateway."""

    def __init__(
        self,
        url: str,
        hub_key: SigningKey,
        *,
        hop_key: SigningKey | None = None,
        gateway_kid: str | None = None,
        clock: Callable[[], float] = time.time,
        delivery: Delivery | None = None,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.hub_key = hub_key
        self.hop_key = hop_key or hub_key
        super().__init__(
            url,
            signing_key=self.hop_key,
            gateway_kid=gateway_kid,
            clock=clock,
            delivery=delivery,
            timeout=timeout,
            session=session,
        )
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._on_connect: Callable[[], None] = lambda: None

    @classmethod
    def for_membership(
        cls, membership: Membership, hub_key: SigningKey, **kwargs: Any
    ) -> GatewayClient:
        """Return a client for a gateway the hub has joined."""
        hop_key = kwargs.get("hop_key") or hub_key
        if hub_key.kid != membership.hub_kid or hop_key.kid != membership.hop_kid:
            raise GatewayKeyChanged(
                "these keys are not the ones this membership registered; pass the hub key "
                "and the hop key the hub joined with",
                reason="wrong_key",
            )
        return cls(membership.url, hub_key, gateway_kid=membership.gateway_kid, **kwargs)

    # -- agency requests --------------------------------------------------------------------

    async def fetch_registry(
        self,
        authority_kid: str,
        *,
        current: VerifiedRegistry | None = None,
        now: float | None = None,
    ) -> VerifiedRegistry:
        """Fetch and verify the registry under the pinned authority; refuse a rollback."""
        answer = await self.get_registry()
        if current is not None and answer.registry == current.token:
            return current
        return verify_registry(
            answer.registry,
            authority_jwk=answer.authority_jwk.model_dump(exclude_none=True),
            authority_kid=authority_kid,
            audience=self._audience(),
            now=self.clock() if now is None else now,
            last_version=None if current is None else current.version,
        )

    async def consistency_for(
        self, message: StreamMessage, last_checkpoint: str | None
    ) -> list[bytes] | None:
        """Fetch the consistency proof a routed request needs, or None when it needs none."""
        if last_checkpoint is None:
            return None
        try:
            sizes = consistency_sizes(message, last_checkpoint)
        except RequestRejected:
            return None  # verify_routed_request reports the broken proof itself
        if sizes is None:
            return None
        try:
            return await self.get_consistency_proof(*sizes)
        except (GatewayRejected, MalformedMessage, SchemaError, LogRangeError) as err:
            raise ProofWithheld(
                f"the gateway did not give a consistency proof from log size {sizes[0]} to "
                f"{sizes[1]}: {err}"
            ) from err

    async def upload_clip(self, request_id: str, sha256: str, ciphertext: bytes) -> None:
        """Upload one sealed clip for a request, retrying while the gateway is unavailable."""
        body = bytes(ciphertext)
        path = f"/v1/requests/{check_request_id(request_id)}/clips/{sha256}"
        # A sealed clip may take minutes on a home uplink: bound the silence, not the total.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)

        async def attempt() -> bytes:
            return await self._request(
                "POST", path, body, content_type="application/octet-stream", timeout=timeout
            )

        await self.delivery.send(self.origin, attempt)

    # -- alert photos -----------------------------------------------------------------------

    @staticmethod
    def _attachment_path(alert_id: str, sha256: str) -> str:
        for name, value in (("alert_id", alert_id), ("sha256", sha256)):
            if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
                raise SchemaError(
                    f"{name} must be 64 lower-case hex digits (a SHA-256)",
                    reason="bad_sha256",
                    field=name,
                )
        return f"/v1/alerts/{alert_id}/attachments/{sha256}"

    async def upload_attachment(self, alert_id: str, sha256: str, data: bytes) -> None:
        """Upload a photo of this hub's posted alert, retrying while the gateway is unavailable."""
        # Post the alert first: the gateway takes only photos a live alert of this hub lists.
        path = self._attachment_path(alert_id, sha256)
        body = bytes(data)
        if hashlib.sha256(body).hexdigest() != sha256:
            raise AttachmentCorrupt(
                f"these bytes are not photo {sha256[:16]}...: their SHA-256 differs; upload "
                "exactly the bytes the alert lists",
            )
        # A photo may take a while on a home uplink: bound the silence, not the total.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)

        async def attempt() -> bytes:
            return await self._request(
                "POST", path, body, content_type="application/octet-stream", timeout=timeout
            )

        await self.delivery.send(self.origin, attempt)

    async def fetch_attachment(self, alert_id: str, sha256: str, size: int) -> bytes:
        """Fetch a photo of an alert relayed to this hub; check its SHA-256 and size."""
        # size and sha256 come from the verified alert's claims; the gateway is not trusted.
        path = self._attachment_path(alert_id, sha256)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise SchemaError("size must be a positive integer", reason="invalid_field")
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)

        # Read at least an error answer's worth, so a refusal of a tiny photo is not cut off.
        limit = max(size, MAX_ANSWER_BYTES)

        async def attempt() -> bytes:
            try:
                return await self._request("GET", path, limit=limit, timeout=timeout)
            except GatewayUnavailable as err:
                if err.reason != "too_large":
                    raise
                # Too many bytes is not a passing failure: do not retry it.
                raise AttachmentCorrupt(
                    f"the gateway served more than the {size} bytes the alert lists for photo "
                    f"{sha256[:16]}...; it was not kept",
                ) from err

        data = await self.delivery.send(self.origin, attempt)
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            raise AttachmentCorrupt(
                f"photo {sha256[:16]}... arrived as {len(data)} bytes with another SHA-256 "
                f"than the alert lists ({size} bytes); it was not kept",
            )
        return data

    async def post_answer(self, request_id: str, answer_jws: str) -> AnswerReceipt:
        """Post the hub's signed answer to a request; return where the log put it."""
        body = answer_jws.encode("ascii")
        path = f"/v1/requests/{check_request_id(request_id)}/answers"

        async def attempt() -> bytes:
            return await self._request(
                "POST", path, body, content_type="application/jose", limit=MAX_NOTE_BYTES
            )

        data = await self.delivery.send(self.origin, attempt)
        answer = parse_answer(AnswerPosted, data, what="answer receipt", limit=MAX_NOTE_BYTES)
        return AnswerReceipt(
            log_index=answer.log_index, checkpoint=answer.checkpoint, proof=answer.proof
        )

    def _registration(self, cell: str, audience: str, hop_key: SigningKey | None = None) -> str:
        hop_jwk = dict((hop_key or self.hop_key).public_jwk)
        claims = {"aud": audience, "cell": cell, "hop_key": hop_jwk}
        return sign_message(self.hub_key, TYP_REGISTRATION, claims, now=self.clock())

    async def join(self, code: str, cell: str, *, pin: str | None = None) -> Membership:
        """Join the gateway with a one-time invite code, pinning its key; return the membership."""
        info = await self.info()
        key = info.gateway
        if pin is not None and parse_pin(pin) != key.kid:
            raise GatewayKeyChanged(
                f"gateway key {key.kid} does not match the pin you gave; check the URL and "
                "ask the operator for the gateway's fingerprint",
            )
        if key.url and key.url.rstrip("/") != self.url:
            raise GatewayRejected(
                f"the gateway says its URL is {key.url}; join with exactly that URL, since "
                "every request is signed for it",
                reason="wrong_url",
            )
        body = json.dumps(
            {
                "code": code,
                "jwk": dict(self.hub_key.public_jwk),
                "registration": self._registration(cell, key.kid),
            },
            separators=(",", ":"),
        ).encode()
        self.gateway_kid = key.kid
        try:
            data = await self._request("POST", "/v1/join", body, content_type="application/json")
        except GatewayRejected as err:
            if err.reason != "already_member":
                raise
            # Joining twice with the same key (say the first answer was lost) is not an
            # error: the membership exists, so bring its registration up to date.
            log.info("already a member of %s; registering again", self.origin)
            registered = await self.register(cell)
            member = registered.member
            since = 0
        else:
            answer = parse_answer(JoinAnswer, data, what="join answer")
            if answer.gateway.kid != key.kid or answer.member.kid != self.hub_key.kid:
                raise GatewayKeyChanged("join answer names another gateway key or hub")
            member = answer.member
            since = answer.since
        return Membership(
            url=self.url,
            gateway_kid=key.kid,
            gateway_jwk=key.jwk.model_dump(exclude_none=True),
            gateway_name=key.name,
            hub_kid=member.kid,
            hop_kid=member.hop_kid,
            cell=member.cell,
            since=since,
        )

    def _audience(self) -> str:
        if self.gateway_kid is None:
            raise GatewayKeyChanged(
                "no gateway key pinned; join the gateway first", reason="not_joined"
            )
        return self.gateway_kid

    async def register(self, cell: str, *, new_hop_key: SigningKey | None = None) -> RegisterAnswer:
        """Register the hub's cell (and optionally a new hop key) with the gateway."""
        # The caller stores the answer's cell and hop kid in its Membership
        # (dataclasses.replace), and builds later clients with the new hop key.
        # The request is signed with the current hop key; once the gateway has the new one,
        # every later request is signed with it.
        token = self._registration(cell, self._audience(), new_hop_key)

        async def attempt() -> bytes:
            return await self._request(
                "POST", "/v1/register", token.encode(), content_type="application/jose"
            )

        data = await self.delivery.send(self.origin, attempt)
        answer = parse_answer(RegisterAnswer, data, what="register answer")
        if new_hop_key is not None:
            self.hop_key = new_hop_key
            self._signer = HopSigner(new_hop_key, clock=self.clock)
        return answer

    def sign_alert(
        self,
        category: str,
        text: str,
        cell: str,
        *,
        attachments: Iterable[dict[str, Any]] = (),
        lifetime_s: int | None = None,
    ) -> str:
        """Sign an alert for this neighbourhood."""
        claims: dict[str, Any] = {
            "aud": self._audience(),
            "category": category,
            "text": text,
            "cell": cell,
            "attachments": list(attachments),
        }
        now = int(self.clock())
        if lifetime_s is not None:
            claims.update(iat=now, exp=now + int(lifetime_s))
        return sign_message(self.hub_key, TYP_ALERT, claims, now=now)

    async def post_alert(self, token: str) -> str:
        """Post a signed alert, retrying while the gateway is unavailable; return its id."""
        body = token.encode("ascii")
        attempts = 0

        async def attempt() -> bytes:
            nonlocal attempts
            attempts += 1
            try:
                return await self._request(
                    "POST", "/v1/alerts", body, content_type="application/jose"
                )
            except GatewayRejected as err:
                # A retry after a lost answer meets its own first copy: already accepted.
                if attempts > 1 and err.reason == "replay":
                    return b""
                raise

        data = await self.delivery.send(self.origin, attempt)
        if data:
            answer = parse_answer(AlertAnswer, data, what="alert answer")
            if answer.id != alert_id(token):
                raise MalformedMessage(
                    "gateway answered with another alert's id", reason="bad_answer"
                )
        return alert_id(token)

    # -- the stream -------------------------------------------------------------------------

    async def stream(
        self,
        since: int,
        on_ack: Callable[[int], Awaitable[None] | None],
        *,
        on_state: Callable[[str], None] | None = None,
    ) -> AsyncIterator[StreamMessage]:
        """Yield pushed messages in order after since, forever, reconnecting as needed."""
        # on_ack(seq) runs when the consumer asks for the message after seq, i.e. once it
        # has handled seq, and must store seq durably; then the gateway is told. A reconnect
        # resumes after the last seq stored, so the hub sees every message once, in order.
        # on_state hears "connected", "disconnected" and "circuit_open" (for a status line).
        # GatewayRejected ends the stream when the gateway refuses the hub itself (blocked,
        # unknown key, clock too far off, replaced by another stream): retrying won't help.
        report = on_state or (lambda state: None)
        self._on_connect = lambda: report("connected")
        last = since
        breaker = self.delivery.breaker(self.origin)
        backoff = self.delivery.backoff
        failures = 0
        while True:
            if not breaker.allow():
                report("circuit_open")
                wait = breaker.retry_after()
                log.warning(
                    "gateway %s failed %s times in a row; next try in %.0f s",
                    self.origin,
                    breaker.failures,
                    wait,
                )
                await asyncio.sleep(wait)
                continue
            started = time.monotonic()
            received = 0
            try:
                async with contextlib.aclosing(self._stream_once(last)) as messages:
                    async for message in messages:
                        received += 1
                        yield message
                        await _maybe_await(on_ack(message.seq))
                        last = message.seq
                        await self._ack(last)
                # The server closed the socket cleanly (restart, heartbeat): reconnect.
                outcome = "closed"
            except GatewayUnavailable as err:
                outcome = str(err)
                breaker.record_failure()
            report("disconnected")
            healthy = received > 0 or time.monotonic() - started >= STABLE_AFTER_S
            failures = 0 if healthy else failures + 1
            delay = backoff.delay(failures)
            log.info(
                "stream from %s ended (%s) at seq %s; reconnecting in %.1f s",
                self.origin,
                outcome,
                last,
                delay,
            )
            await asyncio.sleep(delay)

    async def _ack(self, seq: int) -> None:
        ws = self._ws
        if ws is not None and not ws.closed:
            try:
                await ws.send_str(encode_ack(seq))
            except (ConnectionError, RuntimeError) as err:
                # The ack is re-sent implicitly: a reconnect resumes after this seq anyway.
                log.info("could not send ack %s: %s", seq, err)

    async def _stream_once(self, since: int) -> AsyncIterator[StreamMessage]:
        url = join_url(self.url, "/v1/stream", [("since", str(since))])
        headers = self._signer.headers("GET", url, b"")
        try:
            ws = await self._http().ws_connect(
                url,
                headers=headers,
                heartbeat=HEARTBEAT_S,
                max_msg_size=MAX_FRAME_BYTES,
                autoclose=True,
            )
        except aiohttp.WSServerHandshakeError as err:
            reason = (err.headers or {}).get("Porchlight-Error-Reason", f"http_{err.status}")
            if err.status >= 500 or err.status in (408, 429):
                raise GatewayUnavailable(
                    f"gateway refused the stream for now: HTTP {err.status} {reason}",
                    reason=reason,
                ) from err
            raise GatewayRejected(
                f"gateway refused the stream: HTTP {err.status} {reason}",
                reason=reason,
                status=err.status,
            ) from err
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise GatewayUnavailable(
                f"cannot reach the gateway at {self.origin}: {err or type(err).__name__}"
            ) from err
        self._ws = ws
        # The gateway answered and authenticated us: it is up.
        self.delivery.breaker(self.origin).record_success()
        self._on_connect()
        expected = since
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise GatewayUnavailable("gateway sent a non-text frame", reason="bad_frame")
                try:
                    frame = parse_frame(msg.data)
                except (MalformedMessage, SchemaError) as err:
                    raise GatewayUnavailable(
                        f"gateway sent a bad frame: {err}", reason="bad_frame"
                    ) from err
                if frame.seq <= expected:
                    continue  # already handled before a reconnect
                expected = frame.seq
                yield StreamMessage(
                    seq=frame.seq,
                    kind=frame.kind,
                    id=frame.id,
                    jws=frame.jws,
                    jwk=frame.jwk.model_dump(exclude_none=True) if frame.jwk else None,
                    proof=frame.proof,
                )
            code = ws.close_code
            if code in _FINAL_CLOSE:
                raise GatewayRejected(
                    f"gateway closed the stream: {_FINAL_CLOSE[code]}",
                    reason=_FINAL_CLOSE[code],
                )
            if ws.exception() is not None:
                raise GatewayUnavailable(f"stream failed: {ws.exception()}")
        finally:
            self._ws = None
            await ws.close()


async def join_gateway(
    url: str,
    code: str,
    hub_key: SigningKey,
    cell: str,
    *,
    hop_key: SigningKey | None = None,
    pin: str | None = None,
) -> Membership:
    """Join the gateway at url with an invite code; return the membership to store."""
    async with GatewayClient(url, hub_key, hop_key=hop_key) as client:
        return await client.join(code, cell, pin=pin)
