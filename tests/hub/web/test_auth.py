"""The web UI's access: HTTPS with the printed certificate, sign-in, sessions, CSRF, lockout."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import aiohttp
import pytest

from tests.hub.web.conftest import PASSPHRASE, WebHub, csrf_of, sign_in


async def test_https_by_default_with_the_fingerprint_it_prints(web_hub):
    assert web_hub.url.startswith("https://127.0.0.1:")
    async with web_hub.client() as client, client.get("/healthz") as reply:
        assert (await reply.json())["status"] == "ok"
    wrong = aiohttp.Fingerprint(bytes(32))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=wrong)) as client:
        with pytest.raises(aiohttp.ServerFingerprintMismatch):
            await client.get(web_hub.url + "/healthz")


def test_plain_http_is_refused_off_loopback(tmp_path):
    hub = WebHub(tmp_path / "oak", cameras=())
    done = subprocess.run([sys.executable, "-m", "hub.cli", "run", "--data", str(hub.root),
                           "--listen", "0.0.0.0:0", "--http"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr == ("porchlight: error: plain HTTP is only allowed on 127.0.0.1, not "
                           "0.0.0.0: the web UI carries passphrases (drop --http to serve HTTPS)\n")


async def test_sign_in_sets_a_strict_cookie_and_sign_out_ends_the_session(web_hub):
    async with web_hub.client() as client:
        async with client.get("/", allow_redirects=False, headers={"Accept": "text/html"}) as page:
            assert page.status == 303 and page.headers["Location"] == "/login?next=/"
        reply = await sign_in(client, "owner", PASSPHRASE)
        assert reply.status == 303
        cookie = next(v for k, v in reply.headers.items()
                      if k == "Set-Cookie" and v.startswith("porchlight_session="))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie
        async with client.get("/") as page:
            assert page.status == 200
            assert "0 pending agency requests" in await page.text()
            csp = page.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        token = await csrf_of(client)
        async with client.post("/logout", data={"csrf": token}, allow_redirects=False) as out:
            assert out.status == 303
        async with client.get("/", allow_redirects=False) as page:
            assert page.status == 401


async def test_a_forged_form_is_refused_and_changes_nothing(web_hub):
    async with web_hub.client() as client:
        await sign_in(client, "owner", PASSPHRASE)
        # No CSRF token: refused, and the person was not added.
        async with client.post("/settings/people", data={
                "name": "mallory", "role": "owner", "passphrase": "x" * 16}) as reply:
            assert reply.status == 403
            assert await reply.text() == "the form is out of date or forged (no valid CSRF token)"
        token = await csrf_of(client)
        # The right token from another site's page: refused by its Origin.
        async with client.post("/settings/people", headers={"Origin": "https://evil.example"},
                               data={"csrf": token, "name": "mallory", "role": "owner",
                                     "passphrase": "x" * 16}) as reply:
            assert reply.status == 403
            assert await reply.text() == "cross-origin request refused"
        async with client.get("/settings") as page:
            assert "mallory" not in await page.text()
    assert not (web_hub.root / "keys" / "people" / "mallory.age").exists()


async def test_failed_sign_ins_lock_out_with_a_growing_backoff(web_hub):
    async with web_hub.client() as client:
        first = await sign_in(client, "owner", "not the passphrase")
        assert first.status == 401 and "Wrong name or passphrase." in await first.text()
        # Straight after a failure even the right passphrase waits: no scrypt is spent on it.
        early = await sign_in(client, "owner", PASSPHRASE)
        assert early.status == 429
        assert "Too many failed sign-ins: try again in 1 s." in await early.text()
        await asyncio.sleep(1.1)
        second = await sign_in(client, "owner", "still not it")
        assert second.status == 401
        early = await sign_in(client, "owner", PASSPHRASE)
        assert early.status == 429
        assert "try again in 2 s." in await early.text()
        await asyncio.sleep(2.1)
        assert (await sign_in(client, "owner", PASSPHRASE)).status == 303


async def test_an_unknown_name_fails_like_a_wrong_passphrase(web_hub):
    async with web_hub.client() as client:
        reply = await sign_in(client, "nobody", PASSPHRASE)
        assert reply.status == 401 and "Wrong name or passphrase." in await reply.text()


async def test_an_idle_session_ends(tmp_path):
    hub = WebHub(tmp_path / "elm", cameras=(), config="").start()
    try:
        config = hub.root / "config.toml"
        hub.stop()
        config.write_text(config.read_text().replace("idle_minutes = 15.0", "idle_minutes = 0.02"))
        hub.start()
        async with hub.client() as client:
            assert (await sign_in(client, "owner", PASSPHRASE)).status == 303
            async with client.get("/") as page:
                assert page.status == 200
            await asyncio.sleep(1.6)
            async with client.get("/", allow_redirects=False) as page:
                assert page.status == 401
    finally:
        hub.stop()
