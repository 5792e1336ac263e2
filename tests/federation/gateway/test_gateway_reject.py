"""Bad input to a real gateway on loopback: the exact 4xx and reason, nothing stored or relayed.

Each case runs against a fresh gateway with two members in one cell: the author, and a
listener whose stream is open. After the bad request the author posts a valid alert, and
the listener's stream must yield exactly that one (plus any alert the case itself accepted
on purpose), so nothing of the bad request was relayed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import io
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from federation.cells import cell_for
from federation.gateway.operator import block_hub, create_invite
from federation.hop import sign_request
from federation.http import GatewayRejected
from federation.jws import sign_message
from federation.keys import SigningKey, generate_signing_key
from federation.member.client import GatewayClient
from federation.schemas import TYP_ALERT, TYP_REGISTRATION
from federation.wire import StreamMessage
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    RunningGateway,
    no_leaked_tasks,
    no_leaked_threads,
    running_gateway,
    signed_request,
)

CELL = cell_for(52.3731, 4.8926)
FAR_CELL = cell_for(52.3731, 4.9926)
NOT_STORED = ("members", "invites", "blocked", "alerts", "deliveries", "replay")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict, payload: bytes | dict, key: SigningKey | None) -> str:
    """Build a compact JWS by hand, so it can break every rule."""
    if isinstance(payload, dict):
        payload = json.dumps(payload).encode()
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload)}"
    signature = key.private.sign(signing_input.encode()) if key is not None else b""
    return f"{signing_input}.{b64(signature)}"


@dataclass
class World:
    gateway: RunningGateway
    author: SigningKey
    author_client: GatewayClient
    listener: SigningKey
    listener_client: GatewayClient
    session: aiohttp.ClientSession
    received: list[StreamMessage] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    accepted: list[str] = field(default_factory=list)
    before: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.gateway.url

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.author.kid,
            "aud": self.gateway.kid,
            "iat": now,
            "exp": now + 3600,
            "jti": secrets.token_urlsafe(12),
            "category": "safety",
            "text": "Fallen tree",
            "cell": CELL,
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def alert(self, key: SigningKey | None = None, **changes: Any) -> str:
        key = key or self.author
        return raw_token(
            {"alg": "Ed25519", "typ": TYP_ALERT, "kid": key.kid},
            self.claims(iss=key.kid, **changes),
            key,
        )

    async def post(
        self,
        body: bytes | str,
        *,
        key: SigningKey | None = None,
        path: str = "/v1/alerts",
        **kwargs: Any,
    ) -> tuple[int, dict]:
        if isinstance(body, str):
            body = body.encode()
        return await signed_request(
            self.session, "POST", self.url + path, body, key or self.author, **kwargs
        )

    async def post_valid(self, text: str = "Valid alert") -> str:
        token = self.author_client.sign_alert("safety", text, CELL)
        alert_id = await self.author_client.post_alert(token)
        self.accepted.append(alert_id)
        return alert_id

    async def check_only_valid_alerts_relayed(self) -> None:
        await self.post_valid("Probe after the bad request")
        deadline = time.monotonic() + 10
        while len(self.received) < len(self.accepted) and time.monotonic() < deadline:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 0.5)
        await asyncio.sleep(0.1)
        assert [m.id for m in self.received] == self.accepted
        assert [m.seq for m in self.received] == list(range(1, len(self.accepted) + 1))


@pytest.fixture
async def world(tmp_path):
    async with running_gateway(
        tmp_path / "gw", alerts_per_hour=1000, check_interval_s=0.1
    ) as gateway:
        author, author_m = await gateway.member(cell=CELL)
        listener, listener_m = await gateway.member(cell=CELL)
        author_client = GatewayClient.for_membership(author_m, author)
        listener_client = GatewayClient.for_membership(listener_m, listener)
        async with aiohttp.ClientSession() as session:
            w = World(gateway, author, author_client, listener, listener_client, session)
            connected = asyncio.Event()

            async def listen() -> None:
                stream = listener_client.stream(
                    0, lambda seq: None, on_state=lambda s: s == "connected" and connected.set()
                )
                async with contextlib.aclosing(stream) as messages:
                    async for message in messages:
                        w.received.append(message)
                        w.arrived.set()

            task = asyncio.create_task(listen(), name="listener")
            await asyncio.wait_for(connected.wait(), 10)
            try:
                yield w
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, GatewayRejected):
                    await task
                await author_client.close()
                await listener_client.close()


Case = Callable[[World], Awaitable[tuple[int, dict]]]


async def forged_signature(w: World):
    header, payload, signature = w.alert().split(".")
    flipped = ("B" if signature[0] != "B" else "C") + signature[1:]
    return await w.post(f"{header}.{payload}.{flipped}")


async def unregistered_key(w: World):
    return await w.post(w.alert(key=generate_signing_key()))


async def alg_none(w: World):
    return await w.post(
        raw_token({"alg": "none", "typ": TYP_ALERT, "kid": w.author.kid}, w.claims(), None)
    )


async def hs256_with_public_key(w: World):
    header = {"alg": "HS256", "typ": TYP_ALERT, "kid": w.author.kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(w.claims()).encode())}"
    secret = base64.urlsafe_b64decode(w.author.public_jwk["x"] + "=")
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return await w.post(f"{signing_input}.{b64(mac)}")


def header_injection(member: str) -> Case:
    async def case(w: World):
        attacker = generate_signing_key()
        value = dict(attacker.public_jwk) if member == "jwk" else "https://evil.example/keys"
        header = {"alg": "Ed25519", "typ": TYP_ALERT, "kid": w.author.kid, member: value}
        return await w.post(raw_token(header, w.claims(), attacker))

    case.__name__ = f"{member}_header_injection"
    return case


async def expired(w: World):
    now = int(time.time())
    return await w.post(w.alert(iat=now - 7200, exp=now - 3600))


async def iat_in_the_future(w: World):
    now = int(time.time())
    return await w.post(w.alert(iat=now + 3600, exp=now + 7200))


async def replayed_jti(w: World):
    token = w.author_client.sign_alert("safety", "First copy", CELL)
    w.accepted.append(await w.author_client.post_alert(token))
    await asyncio.sleep(0.2)
    w.before = w.gateway.counts()  # the first copy is meant to be stored
    return await w.post(token)


async def wrong_aud(w: World):
    return await w.post(w.alert(aud=generate_signing_key().kid))


async def ten_megabyte_body(w: World):
    body = b"A" * (10 * 1024 * 1024)
    headers = sign_request(w.author, "POST", w.url + "/v1/alerts", body, now=time.time())
    async with w.session.post(w.url + "/v1/alerts", data=io.BytesIO(body), headers=headers) as resp:
        assert resp.request_info.headers.get("Content-Length") == str(len(body))
        return resp.status, await resp.json()


async def ten_megabyte_body_chunked(w: World):
    body = b"A" * (10 * 1024 * 1024)
    headers = sign_request(w.author, "POST", w.url + "/v1/alerts", body, now=time.time())

    async def chunks():
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    async with w.session.post(w.url + "/v1/alerts", data=chunks(), headers=headers) as resp:
        return resp.status, await resp.json()


async def deeply_nested_json(w: World):
    nested: Any = "x"
    for _ in range(40):
        nested = [nested]
    return await w.post(w.alert(text=nested))


async def invalid_utf8(w: World):
    payload = json.dumps(w.claims(text="PLACEHOLDER")).encode().replace(b"PLACEHOLDER", b"caf\xe9")
    header = {"alg": "Ed25519", "typ": TYP_ALERT, "kid": w.author.kid}
    return await w.post(raw_token(header, payload, w.author))


async def unknown_category(w: World):
    return await w.post(w.alert(category="burglary"))


async def signed_for_another_host(w: World):
    port = w.url.rsplit(":", 1)[1]
    evil = f"http://evil.example:{port}/v1/alerts"
    return await w.post(w.alert(), sign_url=evil, extra_headers={"Host": f"evil.example:{port}"})


async def signed_for_another_path(w: World):
    return await w.post(w.alert(), sign_url=w.url + "/v1/register")


async def stale_created(w: World):
    return await w.post(w.alert(), now=time.time() - 120)


async def created_in_the_future(w: World):
    return await w.post(w.alert(), now=time.time() + 60)


async def unsigned_request(w: World):
    async with w.session.post(w.url + "/v1/alerts", data=w.alert()) as resp:
        return resp.status, await resp.json()


async def unknown_hop_key(w: World):
    return await w.post(w.alert(), key=generate_signing_key())


async def body_swapped_after_signing(w: World):
    headers = sign_request(
        w.author, "POST", w.url + "/v1/alerts", w.alert().encode(), now=time.time()
    )
    return await w.post(w.alert(), headers=headers)


async def replayed_hop_signature(w: World):
    token = w.author_client.sign_alert("safety", "Signed once", CELL)
    headers = sign_request(w.author, "POST", w.url + "/v1/alerts", token.encode(), now=time.time())
    first = await w.post(token, headers=headers)
    assert first[0] == 202, first
    w.accepted.append(first[1]["id"])
    await asyncio.sleep(0.2)
    w.before = w.gateway.counts()
    return await w.post(token, headers=headers)


async def alert_of_another_member(w: World):
    return await w.post(w.alert(key=w.listener))


async def cell_far_from_registration(w: World):
    return await w.post(w.alert(cell=FAR_CELL))


async def registration_posted_as_alert(w: World):
    token = sign_message(
        w.author,
        TYP_REGISTRATION,
        {"aud": w.gateway.kid, "cell": CELL, "hop_key": dict(w.author.public_jwk)},
        now=time.time(),
    )
    return await w.post(token)


async def empty_body(w: World):
    return await w.post(b"")


async def non_ascii_body(w: World):
    return await w.post(b"\xff\xfe")


async def blocked_hub(w: World):
    block_hub(w.gateway.data_dir, w.listener.kid)
    w.before = w.gateway.counts()
    return await w.post(w.alert(key=w.listener), key=w.listener)


CASES: list[tuple[Case, int, str]] = [
    (forged_signature, 400, "bad_signature"),
    (unregistered_key, 400, "unknown_kid"),
    (alg_none, 400, "alg_none"),
    (hs256_with_public_key, 400, "alg_not_allowed"),
    (header_injection("jwk"), 400, "header_not_allowed"),
    (header_injection("jku"), 400, "header_not_allowed"),
    (header_injection("x5u"), 400, "header_not_allowed"),
    (expired, 400, "expired"),
    (iat_in_the_future, 400, "not_yet_valid"),
    (replayed_jti, 409, "replay"),
    (wrong_aud, 400, "wrong_aud"),
    (ten_megabyte_body, 413, "too_large"),
    (ten_megabyte_body_chunked, 413, "too_large"),
    (deeply_nested_json, 400, "too_deep"),
    (invalid_utf8, 400, "not_utf8"),
    (unknown_category, 400, "invalid_field"),
    (signed_for_another_host, 401, "hop_wrong_target"),
    (signed_for_another_path, 401, "hop_bad_signature"),
    (stale_created, 401, "hop_stale"),
    (created_in_the_future, 401, "hop_future"),
    (unsigned_request, 401, "hop_signature_missing"),
    (unknown_hop_key, 401, "hop_unknown_key"),
    (body_swapped_after_signing, 401, "digest_mismatch"),
    (replayed_hop_signature, 401, "hop_replay"),
    (alert_of_another_member, 400, "unknown_kid"),
    (cell_far_from_registration, 400, "cell_out_of_range"),
    (registration_posted_as_alert, 400, "wrong_typ"),
    (empty_body, 400, "empty"),
    (non_ascii_body, 400, "not_ascii"),
]


@pytest.mark.parametrize(("case", "status", "reason"), CASES, ids=[c[0].__name__ for c in CASES])
async def test_bad_alert_is_rejected_and_changes_nothing(world, case, status, reason):
    world.before = world.gateway.counts()
    got_status, body = await case(world)
    assert (got_status, body.get("reason")) == (status, reason), body
    assert body["error"] and len(body["error"]) < 400
    after = world.gateway.counts()
    assert {k: after[k] for k in NOT_STORED} == {k: world.before[k] for k in NOT_STORED}
    await world.check_only_valid_alerts_relayed()


async def test_unknown_category_names_the_field(world):
    status, body = await unknown_category(world)
    assert (status, body["field"]) == (400, "category")
    assert "crime" in body["error"]


async def test_blocked_hub_is_refused_and_its_stream_closed(world):
    world.before = world.gateway.counts()
    status, body = await blocked_hub(world)
    assert (status, body["reason"]) == (403, "blocked")
    # The running gateway notices the operator's block and closes the hub's stream.
    for _ in range(100):
        if world.listener_client._ws is None:
            break
        await asyncio.sleep(0.05)
    assert world.listener_client._ws is None
    status, body = await world.post(world.alert())
    assert status == 202
    assert world.gateway.counts()["deliveries"] == world.before["deliveries"]


async def test_rate_limit_per_hub(tmp_path):
    async with running_gateway(tmp_path / "gw", alerts_per_hour=2) as gateway:
        key, membership = await gateway.member(cell=CELL)
        async with GatewayClient.for_membership(membership, key) as client:
            for n in range(2):
                await client.post_alert(client.sign_alert("safety", f"alert {n}", CELL))
            async with aiohttp.ClientSession() as session:
                token = client.sign_alert("safety", "one too many", CELL)
                before = gateway.counts()
                headers = sign_request(
                    key, "POST", gateway.url + "/v1/alerts", token.encode(), now=time.time()
                )
                async with session.post(
                    gateway.url + "/v1/alerts", data=token, headers=headers
                ) as resp:
                    assert resp.status == 429
                    assert (await resp.json())["reason"] == "rate_limited"
                    assert 3000 < int(resp.headers["Retry-After"]) <= 3600
                assert gateway.counts()["alerts"] == before["alerts"] == 2


# -- join, stream and routing errors --------------------------------------------------------


def join_body(key: SigningKey, gateway_kid: str, code: str, **claims: Any) -> bytes:
    registration = sign_message(
        key,
        TYP_REGISTRATION,
        {"aud": gateway_kid, "cell": CELL, "hop_key": dict(key.public_jwk), **claims},
        now=time.time(),
    )
    return json.dumps(
        {"code": code, "jwk": dict(key.public_jwk), "registration": registration}
    ).encode()


async def test_join_rejections_consume_no_invite(tmp_path):
    async with running_gateway(tmp_path / "gw") as gateway, aiohttp.ClientSession() as session:
        url = gateway.url + "/v1/join"
        key = generate_signing_key()
        code = create_invite(gateway.data_dir)
        before = gateway.counts()
        cases = [
            (join_body(key, gateway.kid, "ABCD-EFGH-JKMN-PQRS-TVWX"), key, 403, "invite_invalid"),
            (join_body(key, gateway.kid, "not a code"), key, 403, "invite_invalid"),
            (join_body(key, generate_signing_key().kid, code), key, 400, "wrong_aud"),
            (join_body(key, gateway.kid, code), generate_signing_key(), 401, "hop_unknown_key"),
            (b'{"code": "\xff"}', key, 400, "not_utf8"),
            (b"[" * 5000 + b"]" * 5000, key, 400, "too_deep"),
            (b'{"code": "x"}', key, 400, "missing_field"),
            (
                json.dumps(
                    {
                        "code": code,
                        "jwk": {**key.public_jwk, "jku": "https://evil"},
                        "registration": "a.b.c",
                    }
                ).encode(),
                key,
                400,
                "unknown_field",
            ),
        ]
        for body, signer, status, reason in cases:
            got = await signed_request(session, "POST", url, body, signer)
            assert (got[0], got[1].get("reason")) == (status, reason), (reason, got)
        async with session.post(url, data=join_body(key, gateway.kid, code)) as resp:
            assert (resp.status, (await resp.json())["reason"]) == (401, "hop_signature_missing")
        after = gateway.counts()
        assert {k: after[k] for k in NOT_STORED} == {k: before[k] for k in NOT_STORED}
        # The invite survived every bad attempt; it works once, then never again.
        status, body = await signed_request(
            session, "POST", url, join_body(key, gateway.kid, code), key
        )
        assert status == 201 and body["member"]["kid"] == key.kid
        other = generate_signing_key()
        status, body = await signed_request(
            session, "POST", url, join_body(other, gateway.kid, code), other
        )
        assert (status, body["reason"]) == (403, "invite_invalid")


async def test_stream_rejections(tmp_path):
    async with running_gateway(tmp_path / "gw") as gateway, aiohttp.ClientSession() as session:
        key, _ = await gateway.member(cell=CELL)
        for query, status, reason in (
            ("?since=-1", 400, "bad_since"),
            ("?since=01", 400, "bad_since"),
            ("?since=1&since=2", 400, "bad_since"),
            ("?since=5", 400, "since_ahead"),
        ):
            got = await signed_request(session, "GET", gateway.url + "/v1/stream" + query, b"", key)
            assert (got[0], got[1]["reason"]) == (status, reason)
        async with session.get(gateway.url + "/v1/stream") as resp:
            assert resp.status == 401
        async with session.get(gateway.url + "/v1/nothing") as resp:
            assert (resp.status, (await resp.json())["reason"]) == (404, "not_found")
        async with session.get(gateway.url + "/v1/alerts") as resp:
            assert (resp.status, (await resp.json())["reason"]) == (405, "method_not_allowed")


async def test_bad_ack_closes_the_stream_with_policy_violation(tmp_path):
    async with running_gateway(tmp_path / "gw") as gateway, aiohttp.ClientSession() as session:
        key, _ = await gateway.member(cell=CELL)
        url = gateway.url + "/v1/stream?since=0"
        for bad in ('{"ack": 3}', "not json", '{"ack": 0, "more": 1}'):
            headers = sign_request(key, "GET", url, b"", now=time.time())
            async with session.ws_connect(url, headers=headers) as ws:
                await ws.send_str(bad)
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.CLOSE
                assert ws.close_code == 1008


async def test_no_5xx_for_random_bodies(tmp_path):
    # A quick sweep of junk at every route, on top of the parsers' own fuzzing.
    async with running_gateway(tmp_path / "gw") as gateway, aiohttp.ClientSession() as session:
        key, _ = await gateway.member(cell=CELL)
        rng = secrets.SystemRandom()
        for _ in range(60):
            body = rng.randbytes(rng.randrange(0, 300))
            for path in ("/v1/join", "/v1/register", "/v1/alerts"):
                status, _ = await signed_request(session, "POST", gateway.url + path, body, key)
                assert 400 <= status < 500


async def _raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, dict]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode("latin-1") + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


async def test_odd_hosts_paths_and_header_bytes_get_a_json_4xx(tmp_path):
    # Requests no aiohttp client would send, written on a raw socket.
    async with running_gateway(tmp_path / "gw") as gateway:
        key, _ = await gateway.member(cell=CELL)
        port = int(gateway.url.rsplit(":", 1)[1])
        body = b"not a jws"

        def signed() -> dict[str, str]:
            return sign_request(key, "POST", gateway.url + "/v1/alerts", body, now=time.time())

        for host in ("a:b:c", "\xff", "exa mple", "[", ""):
            head = f"POST /v1/alerts HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in signed().items())
            status, answer = await _raw_request(port, head, body)
            # The target URI is the gateway's own, so the signature holds and the body fails.
            assert (status, answer["reason"]) == (400, "not_compact"), host
        for name, value, reason in (
            ("Signature", "porchlight=:\xff\xfe:", "hop_signature_malformed"),
            ("Content-Digest", "sha-256=:\xe9:", "digest_malformed"),
        ):
            head = f"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in {**signed(), name: value}.items())
            status, answer = await _raw_request(port, head, body)
            assert (status, answer["reason"]) == (401, reason)
        for path, status, reason in (
            ("/v1/stream?since=%ff", 401, "hop_signature_missing"),
            ("/v1/%ff", 404, "not_found"),
            ("/v1/../v1/stream", 404, "not_found"),
        ):
            got = await _raw_request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n")
            assert (got[0], got[1]["reason"]) == (status, reason)
        url = gateway.url + "/v1/stream?since=%ff"
        head = "GET /v1/stream?since=%ff HTTP/1.1\r\nHost: x\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in sign_request(key, "GET", url, b"", now=time.time()).items()
        )
        status, answer = await _raw_request(port, head)
        assert (status, answer["reason"]) == (400, "bad_since")
