"""People and per-person keys: a role enforced by encryption, checked with the age CLI."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pyrage
import pytest

from hub.datadir import DataDir
from hub.db import connect
from hub.vault.store import Vault
from tests.hub.web.conftest import (
    PASSPHRASE,
    WORK_FACTOR,
    WebHub,
    age_cli_missing,
    csrf_of,
    sign_in,
)

ANN = "ann-passphrase-long"
FAST = "[vault]\nsegment_seconds = 2.0\n"


def _segments(root: Path, camera: str, after: datetime | None = None) -> list[Path]:
    db = connect(root / "porchlight.db")
    try:
        vault = Vault(DataDir(root), db, [])
        return [root / s.path for s in vault.segments(camera) if s.media_type == "video/mp4"
                and (after is None or s.start >= after)]
    finally:
        db.conn.close()


def _age_opens(identity_file: Path, segment: Path) -> bool:
    done = subprocess.run(["age", "-d", "-i", str(identity_file), str(segment)],
                          capture_output=True, timeout=30)
    return done.returncode == 0 and done.stdout[4:8] in (b"ftyp", b"styp", b"moof")


async def _wait_for_segments(root: Path, camera: str, after: datetime, count: int) -> list[Path]:
    for _ in range(120):
        found = _segments(root, camera, after)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"no new segments of {camera} after {after}")


@pytest.fixture
def two_cameras(tmp_path):
    hub = WebHub(tmp_path / "birch", cameras=("porch", "garage"), config="").start()
    config = hub.root / "config.toml"
    hub.stop()
    config.write_text(config.read_text().replace("segment_seconds = 10.0", "segment_seconds = 2.0"))
    hub.start()
    yield hub
    hub.stop()


async def test_a_viewer_key_opens_shared_footage_only_from_the_share_on(two_cameras, tmp_path):
    if why := age_cli_missing():
        pytest.fail(why)
    hub = two_cameras
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/settings")
        async with owner.post("/settings/people", data={
                "csrf": token, "name": "ann", "role": "viewer", "passphrase": ANN}) as reply:
            assert reply.status == 200 and "ann" in await reply.text()
        before_share = await _wait_for_segments(hub.root, "porch", datetime(2000, 1, 1, tzinfo=UTC), 1)
        shared_at = datetime.now(UTC)
        async with owner.post("/settings/people/ann/share", data={
                "csrf": token, "camera": "porch", "shared": "yes"}) as reply:
            assert reply.status == 200
        after = await _wait_for_segments(hub.root, "porch", shared_at, 2)
        garage = await _wait_for_segments(hub.root, "garage", shared_at, 2)

    # Ann's identity, opened with her passphrase, as a plain age identity file for the age CLI.
    sealed = (hub.root / "keys" / "people" / "ann.age").read_bytes()
    # Sealed at the config's work factor (the suite's hubs use WORK_FACTOR, not the default).
    assert sealed.split(b"\n")[1].endswith(f" {WORK_FACTOR}".encode())
    identity = tmp_path / "ann.key"
    identity.write_bytes(pyrage.passphrase.decrypt(sealed, ANN))
    assert all(_age_opens(identity, s) for s in after[1:])
    assert not any(_age_opens(identity, s) for s in garage)
    assert not _age_opens(identity, before_share[0])

    # What the viewer can reach, through the UI or by asking directly.
    async with hub.client() as ann:
        assert (await sign_in(ann, "ann", ANN)).status == 303
        async with ann.get("/") as page:
            text = await page.text()
            assert "/cameras/porch" in text and "garage" not in text
            assert "pending agency request" not in text
        for path in ("/cameras/garage", "/cameras/garage/snapshot.jpg"):
            async with ann.get(path) as page:
                assert page.status == 404, path
        async with ann.get("/cameras/porch/snapshot.jpg") as page:
            assert page.status == 200 and page.content_type == "image/jpeg"
        async with ann.get("/settings") as page:
            assert page.status == 403
        token = await csrf_of(ann)
        async with ann.post("/settings/people", data={
                "csrf": token, "name": "eve", "role": "owner", "passphrase": "x" * 16}) as reply:
            assert reply.status == 403
    assert not (hub.root / "keys" / "people" / "eve.age").exists()

    # Unsharing stops sealing to her from then on.
    async with hub.client() as owner:
        await sign_in(owner, "owner", PASSPHRASE)
        token = await csrf_of(owner, "/settings")
        async with owner.post("/settings/people/ann/share", data={
                "csrf": token, "camera": "porch", "shared": "no"}) as reply:
            assert reply.status == 200
            assert "footage already sealed to them stays readable with" in await reply.text()
        unshared_at = datetime.now(UTC)
        later = await _wait_for_segments(hub.root, "porch", unshared_at, 2)
    assert not any(_age_opens(identity, s) for s in later[1:])
