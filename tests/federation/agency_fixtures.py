"""A neighbourhood for the agency-request tests: authority, agency, gateway, hubs, clock.

Everything runs in the test's event loop on 127.0.0.1 (real aiohttp servers and clients);
the gateway's clock is a ``Clock`` the test can move forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from federation.agency.tool import AGENCY_KEY_FILE, init_agency
from federation.authority.tool import (
    add_agency,
    authority_jwk,
    authority_kid,
    init_authority,
    sign_registry,
)
from federation.cells import cell_for
from federation.gateway.app import Gateway
from federation.gateway.operator import create_invite, init_gateway
from federation.gateway.settings import load_settings
from federation.jws import new_jti, sign_message
from federation.keys import SigningKey, generate_signing_key, load_private_key
from federation.member.client import GatewayClient, Membership, join_gateway
from federation.registry import VerifiedRegistry, verify_registry
from federation.schemas import TYP_REQUEST
from federation.wire import StreamMessage
from tests.federation.gateway_fixtures import store_counts, write_settings

# Amsterdam, Dam square: the agency's jurisdiction is 10 km around it.
CENTRE = (52.3731, 4.8926)
JURISDICTION = (CENTRE[0], CENTRE[1], 10_000.0)


def east(lat: float, lon: float, metres: float) -> tuple[float, float]:
    """Return the point some metres east of another."""
    return lat, lon + metres / (111_320 * math.cos(math.radians(lat)))


class Clock:
    """Wall-clock time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.offset += seconds


def rfc3339(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_claims(gateway_kid: str, now: float, **changes: Any) -> dict[str, Any]:
    """Return valid request claims: 2 h ending 1 h ago, 300 m around the centre."""
    end = datetime.fromtimestamp(now, tz=UTC) - timedelta(hours=1)
    claims: dict[str, Any] = {
        "aud": gateway_kid,
        "case": "2024-000123",
        "reason": "Burglary at a shop on the Damrak; looking for people passing by",
        "legal_basis": "voluntary",
        "window": {"start": rfc3339(end - timedelta(hours=2)), "end": rfc3339(end)},
        "area": {"lat": CENTRE[0], "lon": CENTRE[1], "radius_m": 300.0},
        "iat": int(now),
        "exp": int(now) + 7 * 86400,
        "jti": new_jti(),
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def sign_request(key: SigningKey, gateway_kid: str, now: float, **changes: Any) -> str:
    """Sign a request as an agency would, through the signing code under test."""
    claims = request_claims(gateway_kid, now, **changes)
    claims.setdefault("iss", key.kid)
    return sign_message(key, TYP_REQUEST, claims, now=now)


def sign_request_unchecked(key: SigningKey, gateway_kid: str, now: float, **changes: Any) -> str:
    """Sign request claims that sign_message refuses (a missing field), to test a receiver."""
    from federation.jws import ALG, sign_compact

    claims = request_claims(gateway_kid, now, **changes)
    claims.setdefault("iss", key.kid)
    payload = json.dumps(claims, separators=(",", ":")).encode()
    return sign_compact(key, {"alg": ALG, "typ": TYP_REQUEST, "kid": key.kid}, payload)


@dataclass
class Hub:
    """A member hub: its key, membership and client."""

    key: SigningKey
    membership: Membership
    client: GatewayClient
    location: tuple[float, float]


@dataclass
class Neighbourhood:
    """A registry authority, an agency and a gateway serving on loopback."""

    root: Path
    url: str
    gateway: Gateway
    clock: Clock
    authority_dir: Path
    agency_dir: Path
    agency_key: SigningKey
    card: dict[str, Any]
    hubs: list[Hub] = field(default_factory=list)

    @property
    def kid(self) -> str:
        """Return the gateway's kid."""
        return self.gateway.kid

    @property
    def data_dir(self) -> Path:
        """Return the gateway's data directory."""
        return self.gateway.data_dir

    @property
    def authority_kid(self) -> str:
        """Return the registry authority's kid."""
        return authority_kid(self.authority_dir)

    def counts(self) -> dict[str, int]:
        """Return the gateway's database row counts."""
        return store_counts(self.data_dir)

    @property
    def log_size(self) -> int:
        """Return the number of entries in the gateway's log."""
        assert self.gateway.requests is not None
        return self.gateway.requests.log.size

    def registry(self, now: float | None = None) -> VerifiedRegistry:
        """Return the registry the gateway serves, verified as a hub would."""
        assert self.gateway.requests is not None and self.gateway.requests.registry is not None
        return verify_registry(
            self.gateway.requests.registry.token,
            authority_jwk=authority_jwk(self.authority_dir),
            authority_kid=self.authority_kid,
            audience=self.kid,
            now=self.clock() if now is None else now,
        )

    async def publish(self, **kwargs: Any) -> dict[str, Any]:
        """Sign the next registry version (by the gateway's clock) and post it."""
        token = sign_registry(self.authority_dir, audience=self.kid, now=self.clock(), **kwargs)
        return await post_json(
            self.url + "/v1/registry",
            {"registry": token, "jwk": authority_jwk(self.authority_dir)},
        )

    def sign(self, **changes: Any) -> str:
        """Sign a request as the agency, by the gateway's clock."""
        return sign_request(self.agency_key, self.kid, self.clock(), **changes)

    def sign_unchecked(self, **changes: Any) -> str:
        """Sign a request that sign_message would refuse to sign, by the gateway's clock."""
        return sign_request_unchecked(self.agency_key, self.kid, self.clock(), **changes)

    async def post_request(self, token: str) -> tuple[int, dict[str, Any]]:
        """Post a request token as an agency would."""
        return await post_body(self.url + "/v1/requests", token.encode(), "application/jose")

    async def join(self, lat: float, lon: float, key: SigningKey | None = None) -> Hub:
        """Join a new hub at a location (it registers only its cell)."""
        key = key or generate_signing_key()
        code = create_invite(self.data_dir)
        membership = await join_gateway(self.url, code, key, cell_for(lat, lon))
        client = GatewayClient.for_membership(membership, key, clock=self.clock)
        hub = Hub(key, membership, client, (lat, lon))
        self.hubs.append(hub)
        return hub


async def answer(
    hood: Neighbourhood,
    hub: Hub,
    request_id: str,
    decision: str,
    clips: Sequence[tuple[dict[str, Any], bytes]] = (),
) -> Any:
    """Answer as a hub does: upload each sealed clip and the custody file, then the answer."""
    from federation.answers import sign_answer

    signed = sign_answer(
        hub.key,
        gateway_kid=hood.kid,
        request_id=request_id,
        decision=decision,  # type: ignore[arg-type]
        clips=[descriptor for descriptor, _ in clips],
        agency_kid=hood.card["kid"],
        recipient=hood.card["recipient"],
        now=hood.clock(),
    )
    for descriptor, sealed in clips:
        await hub.client.upload_clip(request_id, descriptor["sha256"], sealed)
    if signed.custody is not None:
        await hub.client.upload_clip(request_id, signed.custody_sha256, signed.custody)
    receipt = await hub.client.post_answer(request_id, signed.token)
    return signed, receipt


async def post_body(url: str, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    """POST a body and return (status, JSON answer)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers={"Content-Type": content_type}) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def post_json(url: str, value: Any) -> dict[str, Any]:
    """POST JSON; return the answer, which must be a success."""
    import json

    status, answer = await post_body(url, json.dumps(value).encode(), "application/json")
    assert status in (200, 201), (status, answer)
    return answer


async def get_json(url: str) -> tuple[int, Any]:
    """GET a URL and return (status, JSON or text)."""
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        text = await resp.text()
        try:
            import json

            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


@contextlib.asynccontextmanager
async def serve(gateway: Gateway) -> AsyncIterator[str]:
    """Serve a gateway object on 127.0.0.1 and yield its URL."""
    runner = web.AppRunner(gateway.make_app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}"
    gateway.set_public_url(url)
    try:
        yield url
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def neighbourhood(
    root: Path,
    *,
    publish: bool = True,
    on_init: Callable[[Path], None] | None = None,
    **settings: Any,
) -> AsyncIterator[Neighbourhood]:
    """Create an authority, an agency (listed, 10 km around the centre) and a gateway.

    on_init is called with the gateway's data dir once its key exists, before it starts.
    """
    authority_dir = root / "authority"
    init_authority(authority_dir, "Amsterdam civilian oversight board")
    agency_dir = root / "agency"
    card = init_agency(agency_dir, "Amsterdam-Centrum police")
    add_agency(
        authority_dir,
        card,
        jurisdiction=JURISDICTION,
        since="2024-03-01",
        contact="wijkagent@example.org",
    )
    data_dir = root / "gateway"
    init_gateway(data_dir, name="Dam", registry_key=authority_kid(authority_dir))
    settings.setdefault("purge_interval_s", 3600)
    write_settings(data_dir, **settings)
    if on_init is not None:
        on_init(data_dir)
    clock = Clock()
    async with Gateway(data_dir, settings=load_settings(data_dir), clock=clock) as gateway:
        async with serve(gateway) as url:
            hood = Neighbourhood(
                root=root,
                url=url,
                gateway=gateway,
                clock=clock,
                authority_dir=authority_dir,
                agency_dir=agency_dir,
                agency_key=load_private_key(agency_dir / AGENCY_KEY_FILE),
                card=card,
            )
            try:
                if publish:
                    await hood.publish()
                yield hood
            finally:
                for hub in hood.hubs:
                    await hub.client.close()


async def next_message(
    client: GatewayClient, since: int = 0, timeout: float = 10.0
) -> StreamMessage:
    """Return the first message a hub's stream yields after since."""

    async def one() -> StreamMessage:
        async with contextlib.aclosing(client.stream(since, lambda seq: None)) as messages:
            async for message in messages:
                return message
        raise AssertionError("stream ended")

    return await asyncio.wait_for(one(), timeout)


async def no_message(client: GatewayClient, since: int = 0, wait: float = 0.5) -> None:
    """Assert a hub's stream yields nothing for a while."""
    try:
        message = await next_message(client, since, timeout=wait)
    except TimeoutError:
        return
    raise AssertionError(f"hub got a message it should not: {message}")
