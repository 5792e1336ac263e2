"""`porchlight demo` runs start to finish on embedded defaults, as the README promises."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.hub.web.conftest import sign_in


def test_demo_runs_a_whole_neighbourhood_until_ctrl_c(tmp_path):
    demo = subprocess.Popen([sys.executable, "-m", "hub.cli", "demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        for line in demo.stdout:
            lines.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        out = "".join(lines)
        assert "Press Ctrl-C to stop." in out, out + demo.stderr.read()
        assert "segments with its public key only" in out
        assert "no plaintext footage anywhere" in out
        assert "maple-14 received it (verified neighbourhood hub)" in out
        assert "oak-3, 5 km away, received 0 alerts" in out
        assert "maple-12: pending" in out and "maple-14: pending" in out
        assert "oak-3: never saw it (outside the circle)" in out
        assert "agency status: asked 2, approved 1, denied 1, pending 0" in out
        assert "since 2025-03-01: 1 request, 1 approval, 1 denial" in out
        assert "all consistent" in out
        # Each hub's UI and login, and the gateway's public page, are printed.
        ui, passphrase = re.search(r"maple-12: (https://127\.0\.0\.1:\d+)  owner / (\S+)",
                                   out).groups()
        assert re.search(r"the gateway's public page: http://127\.0\.0\.1:\d+/", out)
        base = Path(re.search(r"footage list --data (\S+)/maple-12", out).group(1))
        assert (base / "evidence" / "manifest.json").exists()
        asyncio.run(_second_request_is_pending_in_the_ui(ui, passphrase))
        os.killpg(demo.pid, signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert demo.returncode == 0
    assert "stopped every process and removed the demo's data" in rest
    assert "`porchlight demo --keep DIR` keeps it" in rest
    assert not base.exists()


async def _second_request_is_pending_in_the_ui(ui: str, passphrase: str) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    # The demo's hubs use their self-signed certificates; this test does not pin them.
    async with aiohttp.ClientSession(base_url=ui, cookie_jar=jar, headers={"Origin": ui},
                                     connector=aiohttp.TCPConnector(ssl=False)) as client:
        reply = await sign_in(client, "owner", passphrase)
        assert reply.status == 303
        for _ in range(60):
            async with client.get("/") as page:
                if "1 pending agency request" in await page.text():
                    return
            await asyncio.sleep(0.5)
        raise AssertionError("the demo's second request never showed as pending in the UI")


def test_a_bad_config_stops_every_command(hub_dir, cli):
    config = hub_dir / "config.toml"
    config.write_text(config.read_text().replace("[retention]", "[retention]\nkeep_forever = true"))
    before = sorted(p.name for p in hub_dir.rglob("*"))
    code, out, err = cli("footage", "list", "--data", hub_dir)
    assert (code, out) == (1, "")
    assert err == "porchlight: error: config.toml: retention.keep_forever: unknown key\n"
    assert sorted(p.name for p in hub_dir.rglob("*")) == before
