"""`log verify`: replay a gateway's whole log, and notice forks, altered entries, new keys."""

from __future__ import annotations

import contextlib
import json
import shutil
import time

import aiohttp
import pytest
from aiohttp import web

from federation.auditor.verify import STATE_CHECKPOINT, log_verify
from federation.gateway.app import Gateway
from federation.gateway.settings import load_settings
from federation.http import GatewayKeyChanged
from federation.keys import generate_signing_key
from federation.member.requests import sign_answer
from federation.sealed import seal_clip, sha256_hex
from tests.federation.agency_fixtures import CENTRE, east, neighbourhood, next_message, serve
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    no_leaked_tasks,
    no_leaked_threads,
)


async def _activity(hood, hub) -> str:
    status, answer = await hood.post_request(hood.sign())
    assert status == 201, answer
    request_id = answer["id"]
    await next_message(hub.client, since=hub_seq(hood, hub))
    sealed = seal_clip(b"frames" * 50, hood.card["recipient"])
    clip = {
        "sha256": sha256_hex(sealed),
        "size": len(sealed),
        "start": int(time.time()) - 9000,
        "end": int(time.time()) - 8990,
        "camera": "porch",
    }
    await hub.client.upload_clip(request_id, clip["sha256"], sealed)
    await hub.client.post_answer(
        request_id,
        sign_answer(
            hub.key,
            gateway_kid=hood.kid,
            request_id=request_id,
            decision="approved",
            clips=[clip],
            now=time.time(),
        ),
    )
    return request_id


def hub_seq(hood, hub) -> int:
    member = hood.gateway.store.member(hub.key.kid)
    return member.last_seq - 1


async def test_an_honest_log_verifies_and_grows_consistently(tmp_path):
    state = tmp_path / "auditor"
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*east(*CENTRE, 50))
        await _activity(hood, hub)
        report = await log_verify(hood.url, state, authority_kid=hood.authority_kid)
        assert report.ok, report.problems
        assert report.counts == {"registry": 1, "request": 1, "answer": 1}
        assert (report.size, report.proofs_checked, report.previous_size) == (3, 3, None)
        assert (state / STATE_CHECKPOINT).read_text() == hood.gateway.requests.log.signed_checkpoint

        await hood.publish()
        await _activity(hood, hub)
        report = await log_verify(hood.url, state, authority_kid=hood.authority_kid)
        assert report.ok, report.problems
        assert (report.size, report.previous_size) == (6, 3)

        # Pinned to another authority: every registry version is reported.
        wrong = await log_verify(hood.url, tmp_path / "other", authority_kid=hood.kid)
        assert {p.reason for p in wrong.problems} >= {"registry_wrong_signer"}


async def test_a_forked_log_is_reported_and_not_remembered(tmp_path):
    state = tmp_path / "auditor"
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*CENTRE)
        await _activity(hood, hub)
        await _activity(hood, hub)
        assert (await log_verify(hood.url, state)).ok
        seen = (state / STATE_CHECKPOINT).read_text()
        data_dir, clock = hood.data_dir, hood.clock
    # The operator rewrites history under the same key: a fresh log and database.
    shutil.rmtree(data_dir / "log")
    (data_dir / "gateway.sqlite").unlink()
    from federation.gateway.store import GatewayStore

    GatewayStore(data_dir / "gateway.sqlite", create=True).close()
    async with Gateway(data_dir, settings=load_settings(data_dir), clock=clock) as gateway:
        async with serve(gateway) as url:
            hood.gateway, hood.url = gateway, url
            await hood.publish()
            for _ in range(6):
                assert (await hood.post_request(hood.sign()))[0] == 201
            report = await log_verify(url, state)
    assert not report.ok
    assert [p.reason for p in report.problems] == ["checkpoint_inconsistent"]
    assert (state / STATE_CHECKPOINT).read_text() == seen


@contextlib.asynccontextmanager
async def _tampering_proxy(upstream: str):
    """Serve the upstream gateway, but alter one entry in /v1/log/entries."""

    async def handle(request: web.Request) -> web.Response:
        async with aiohttp.ClientSession() as session:
            async with session.get(upstream + request.path_qs) as resp:
                body = await resp.read()
                status, ctype = resp.status, resp.content_type
        if request.path == "/v1/log/entries" and status == 200:
            data = json.loads(body)
            for entry in data["entries"]:
                if entry["index"] == 1:
                    header, payload, signature = entry["jws"].split(".")
                    # A replacement that always differs from the original signature's end.
                    tail = "AA" if signature[-2:] != "AA" else "BA"
                    entry["jws"] = f"{header}.{payload}.{signature[:-2]}{tail}"
            body = json.dumps(data).encode()
        if request.path == "/v1/info":
            data = json.loads(body)
            data["gateway"]["url"] = str(request.url.origin())
            body = json.dumps(data).encode()
        return web.Response(body=body, status=status, content_type=ctype)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_an_altered_entry_and_a_new_gateway_key_are_caught(tmp_path):
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*CENTRE)
        await _activity(hood, hub)
        async with _tampering_proxy(hood.url) as url:
            report = await log_verify(url, tmp_path / "a")
        reasons = {(p.index, p.reason) for p in report.problems}
        assert (1, "bad_signature") in reasons
        assert (None, "root_mismatch") in reasons
        assert not (tmp_path / "a" / STATE_CHECKPOINT).exists()

        assert (await log_verify(hood.url, tmp_path / "b")).ok
        with pytest.raises(GatewayKeyChanged):
            await log_verify(hood.url, tmp_path / "b", gateway_kid=generate_signing_key().kid)
