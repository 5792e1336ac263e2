"""Settings: the owner downloads a backup (`porchlight backup`, sealed to the household) from a
real `porchlight run`; the file restores with `porchlight restore` into a hub whose footage
exports the same as the original's; nothing is left in the data dir's downloads folder. A viewer
and a forged form get nothing."""

from __future__ import annotations

import re
import time
from datetime import timedelta

from hub.cli.main import main as cli_main
from hub.timeutil import iso, utcnow
from tests.hub.web.conftest import (
    FORGED,
    PASSPHRASE,
    WebHub,
    add_viewer,
    csrf_of,
    run_async,
    sign_in,
)

NAME = re.compile(r'^attachment; filename="porchlight-backup-maple-\d{8}-\d{4}\.tar"$')


def _cli(*args) -> None:
    assert cli_main([str(a) for a in args]) == 0, args


def test_the_owner_downloads_a_backup_that_restores_the_same_footage(tmp_path, clip25):
    hub = WebHub(tmp_path / "maple")
    # Recent footage, so the running hub's retention keeps it.
    start = utcnow().replace(microsecond=0) - timedelta(hours=2)
    _cli("footage", "import", "--data", hub.root, "--camera", "porch", "--start", iso(start),
         clip25)
    secret = tmp_path / "maple.pass"
    hub.start()
    try:
        body, disposition, web_seconds = run_async(_download(hub))
        assert NAME.match(disposition), disposition
        downloads = hub.root / "downloads"
        assert not downloads.exists() or not list(downloads.iterdir())  # removed once sent
        run_async(_refused(hub))
    finally:
        hub.stop()
    assert not list((hub.root / "downloads").iterdir())
    backup = tmp_path / "downloaded.tar"
    backup.write_bytes(body)
    # Figure, not an assertion: the download against `porchlight backup` of the same hub.
    began = time.perf_counter()
    _cli("backup", "--data", hub.root, "--out", tmp_path / "cli.backup", "--with-footage")
    cli_seconds = time.perf_counter() - began
    print(f"backup with footage: {len(body)} bytes downloaded in {web_seconds:.2f} s from the "
          f"running hub, `porchlight backup` of the stopped hub {cli_seconds:.2f} s (in process), "
          f"ratio {web_seconds / cli_seconds:.2f}")
    target = tmp_path / "restored"
    _cli("restore", backup, "--data", target, "--passphrase-file", secret)
    exports = []
    for root in (hub.root, target):
        out = tmp_path / f"{root.name}.mp4"
        _cli("footage", "export", "--data", root, "--camera", "porch", "--from", iso(start),
             "--to", iso(start + timedelta(seconds=25)), "--out", out, "--passphrase-file",
             secret)
        exports.append(out.read_bytes())
    assert len(exports[0]) > 100_000 and exports[0] == exports[1]
    # The downloads folder is never part of a backup.
    assert not (target / "downloads").exists()


async def _download(hub: WebHub) -> tuple[bytes, str, float]:
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/settings")
        async with owner.get("/settings/backup/progress?ticket=page-ticket-1") as r:
            assert (await r.json())["state"] == "waiting"  # not started yet
        began = time.perf_counter()
        async with owner.post("/settings/backup", data={"csrf": token, "with_footage": "yes",
                                                        "ticket": "page-ticket-1"}) as r:
            assert r.status == 200, await r.text()
            assert r.headers["Content-Type"] == "application/x-tar"
            assert r.headers["Cache-Control"] == "no-store"
            body = await r.read()
            assert len(body) == int(r.headers["Content-Length"])
            elapsed = time.perf_counter() - began
            disposition = r.headers["Content-Disposition"]
        # What the page's poll shows: every byte of the data dir counted, the file sent.
        async with owner.get("/settings/backup/progress?ticket=page-ticket-1") as r:
            progress = await r.json()
        assert progress["state"] == "sent" and progress["error"] == ""
        assert progress["done"] == progress["total"] > 300_000  # the footage, at least
        async with owner.get("/settings/backup/progress?ticket=another-ticket") as r:
            assert (await r.json())["state"] == "waiting"
        return body, disposition, elapsed


async def _refused(hub: WebHub) -> None:
    await add_viewer(hub, "robin", "robin's own passphrase", "porch")
    async with hub.client() as viewer:
        assert (await sign_in(viewer, "robin", "robin's own passphrase")).status == 303
        token = await csrf_of(viewer, "/")
        async with viewer.post("/settings/backup", data={"csrf": token,
                                                        "with_footage": "yes"}) as r:
            assert (r.status, await r.text()) == (403, "only an owner may do this")
        async with viewer.get("/settings/backup/progress?ticket=page-ticket-1") as r:
            assert (r.status, await r.text()) == (403, "only an owner may do this")
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        async with owner.post("/settings/backup", data={"with_footage": "yes"}) as r:
            assert (r.status, await r.text()) == (403, FORGED)
        async with owner.post("/settings/backup", data={"csrf": "0" * 43}) as r:
            assert (r.status, await r.text()) == (403, FORGED)
    downloads = hub.root / "downloads"
    assert not downloads.exists() or not list(downloads.iterdir())
