"""Whole bodies: every client reads an answer to its end, however it arrives, and no further
than its cap."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web

from federation.agency.tool import agency_request, agency_status
from federation.authority.tool import publish_registry
from federation.bodies import BodyTooLarge, read_body
from federation.cells import cell_for
from federation.gateway.operator import create_invite
from federation.http import GatewayUnavailable, PublicGatewayClient
from federation.keys import generate_signing_key
from federation.mdns import Advertised
from federation.member.client import GatewayClient, join_gateway
from hub.neighbourhood.lan import LanDirectory
from tests.federation.agency_fixtures import CENTRE, neighbourhood
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    no_leaked_tasks,
    no_leaked_threads,
)
from tests.federation.proxy import slow_proxy


async def test_every_client_reads_answers_that_arrive_in_pieces(tmp_path):
    async with neighbourhood(tmp_path) as hood, slow_proxy(hood.url) as proxy:
        # Everyone knows the gateway by the proxy's address, so hop signatures name it.
        hood.gateway.set_public_url(proxy.url)

        async with PublicGatewayClient(proxy.url) as public:  # the auditor's and hub's base
            served = await public.get_registry()
        assert served.registry == hood.gateway.requests.registry.token

        published = await publish_registry(hood.authority_dir, proxy.url)  # the authority tool
        assert published["version"] == 2

        end = datetime.now(UTC) - timedelta(hours=1)
        request_id = await agency_request(  # the agency tool, hop-signed
            hood.agency_dir, proxy.url, case="2024-000777", reason="Bicycle theft on the Dam",
            start=end - timedelta(hours=1), end=end, lat=CENTRE[0], lon=CENTRE[1],
            radius_m=200.0,
        )
        status = await agency_status(hood.agency_dir, proxy.url, request_id)
        assert status["id"] == request_id

        key = generate_signing_key()  # a member hub, hop-signed
        membership = await join_gateway(
            proxy.url, create_invite(hood.data_dir), key, cell_for(*CENTRE)
        )
        async with GatewayClient.for_membership(membership, key) as hub:
            registry = await hub.fetch_registry(hood.authority_kid)
        assert registry.version == 2

    # The answers really came in pieces.
    assert proxy.largest > 2 * proxy.piece
    assert ("GET", "/v1/registry") in proxy.requests
    assert ("POST", "/v1/join") in proxy.requests


@contextlib.asynccontextmanager
async def _streaming_server(size: int, *, declare: bool) -> AsyncIterator[tuple[str, list]]:
    """Serve `size` bytes of JSON-ish body in 1 KiB pieces; record how much was written."""
    written: list[int] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        if declare:
            resp.content_length = size
        await resp.prepare(request)
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < size:
                piece = min(1024, size - sent)
                await resp.write(b"x" * piece)
                sent += piece
                await asyncio.sleep(0)
        written.append(sent)
        return resp

    app = web.Application()
    app.router.add_get("/v1/registry", handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", written
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "chunked"])
async def test_an_answer_over_the_cap_is_refused(declare):
    limit = 64 * 1024 + 4096  # the registry's cap
    async with _streaming_server(4 * 1024 * 1024, declare=declare) as (url, _):
        async with PublicGatewayClient(url) as client:
            with pytest.raises(GatewayUnavailable) as caught:
                await client.get_registry()
        assert str(caught.value) == f"gateway at {url} answered more than {limit} bytes"
        assert caught.value.reason == "too_large"

        async with aiohttp.ClientSession() as session, session.get(url + "/v1/registry") as resp:
            with pytest.raises(BodyTooLarge) as too_large:
                await read_body(resp, 10_000)
        said = " (it announces 4194304)" if declare else ""
        assert str(too_large.value) == f"the answer is more than 10000 bytes{said}"


async def test_a_body_just_under_the_cap_is_read_whole():
    async with _streaming_server(300_000, declare=False) as (url, written):
        async with aiohttp.ClientSession() as session, session.get(url + "/v1/registry") as resp:
            body = await read_body(resp, 300_000)
    assert body == b"x" * 300_000 and written == [300_000]


async def test_a_lan_neighbour_cannot_answer_with_an_endless_key():
    """A LAN peer's key is read whole through small pieces, and refused when padded past the cap."""
    key = generate_signing_key()
    pad = [0]

    async def handle(request: web.Request) -> web.Response:
        body = {"kid": key.kid, "jwk": key.public_jwk, "pad": "x" * pad[0]}
        return web.Response(body=json.dumps(body).encode(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/lan/v1/key", handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    found = {}
    try:
        async with (
            slow_proxy(f"http://127.0.0.1:{runner.addresses[0][1]}") as proxy,
            aiohttp.ClientSession() as session,
        ):
            port = int(proxy.url.rsplit(":", 1)[1])
            for pad[0] in (1500, 1_000_000):
                directory = LanDirectory(zc=None)  # type: ignore[arg-type]  # browsing unused
                directory.peers[key.kid] = Advertised(key.kid, "hub", "127.0.0.1", port)
                found[pad[0]] = await directory.key_of(key.kid, session)
    finally:
        await runner.cleanup()
    assert found[1500] == key.public_jwk  # whole, though it came in 512-byte pieces
    assert found[1_000_000] is None  # over the cap: refused, not read into memory
