"""A backup of a running hub, as real processes: the hub records a synthetic camera and is a
member of a real gateway; the backup taken meanwhile restores into a new dir whose hub exports
the same footage, records again and still hears its neighbourhood."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from tests.hub.neighbourhood.test_neighbourhood import Running, _porchlight

NEAR_A = "51.5007,-0.1246"
NEAR_B = "51.5010,-0.1240"


def _make_hub(template: Path, root: Path, name: str, location: str) -> Path:
    from federation.keys import generate_signing_key, save_private_key

    shutil.copytree(template, root)
    save_private_key(generate_signing_key(), root / "keys" / "hub-ed25519.pem", overwrite=True)
    lat, lon = location.split(",")
    config = root / "config.toml"
    text = config.read_text().replace('name = "test-hub"', f'name = "{name}"')
    text = text.replace("location = { lat = 51.5007, lon = -0.1246 }",
                        f"location = {{ lat = {lat}, lon = {lon} }}")
    # One-second segments (the synthetic camera's GOP): many segments in a short test.
    config.write_text(text.replace("segment_seconds = 10.0", "segment_seconds = 1.0"))
    return root


def _segments(root: Path) -> list[dict]:
    """The camera's video segments, read from the index (no process: this is polled)."""
    with sqlite3.connect(f"file:{root / 'porchlight.db'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("select id, start, end, sha256 from segments where camera = 'porch' "
                          "and media_type = 'video/mp4' order by start").fetchall()
    return [dict(row) for row in rows]


def _wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return predicate()


@pytest.fixture
def gateway(tmp_path):
    data = tmp_path / "gateway"
    _porchlight("gateway", "init", "--data", data, "--name", "Elm Street")
    running = Running("gateway", "run", "--data", data, "--listen", "127.0.0.1:0")
    url = running.ready.split(" on ", 1)[1].split(" as ")[0]
    yield data, url
    running.stop()


def _join(gateway, hub: Path) -> None:
    data, url = gateway
    code = _porchlight("gateway", "invite", "--data", data).stdout.strip()
    assert "joined Elm Street" in _porchlight("join", "--data", hub, url, code).stdout


def test_a_backup_taken_while_recording_restores_a_hub_that_exports_and_stays_in_its_neighbourhood(
        gateway, hub_template, tmp_path, passfile):
    home = _make_hub(hub_template, tmp_path / "home", "home", NEAR_A)
    neighbour = _make_hub(hub_template, tmp_path / "neighbour", "neighbour", NEAR_B)
    _porchlight("camera", "add", "--data", home, "porch", "--synthetic")
    for hub in (home, neighbour):
        _join(gateway, hub)
    backup = tmp_path / "home.backup"
    restored = tmp_path / "restored"
    hubs = {"home": Running("run", "--http", "--data", home, "--listen", "127.0.0.1:0"),
            "neighbour": Running("run", "--http", "--data", neighbour, "--listen", "127.0.0.1:0")}
    try:
        assert _wait_for(lambda: len(_segments(home)) >= 4)
        out = _porchlight("backup", "--data", home, "--out", backup, "--with-footage").stdout
        assert out.startswith(f"wrote {backup}: ")
        taken = len(_segments(home))
        # It went on recording through the backup, and after it.
        assert _wait_for(lambda: len(_segments(home)) >= taken + 2)
        home_log = hubs.pop("home").stop()
        assert "Traceback" not in home_log

        out = _porchlight("restore", backup, "--data", restored, "--passphrase-file",
                          passfile).stdout
        assert f" into {restored}: " in out
        kept = {s["id"]: s for s in _segments(home)}
        back = _segments(restored)
        assert len(back) >= 4
        listed = json.loads(_porchlight("footage", "list", "--data", restored, "--json").stdout)
        assert [s["id"] for s in listed if s["media_type"] == "video/mp4"] == [
            s["id"] for s in back]
        for segment in back:  # each one whole, byte for byte
            assert kept[segment["id"]]["sha256"] == segment["sha256"]
        assert (restored / "federation" / "membership.json").read_bytes() == (
            home / "federation" / "membership.json").read_bytes()

        # The restored hub exports the same footage as the hub it was taken from.
        first, last = back[0], back[-1]
        exports = []
        for root in (home, restored):
            export = tmp_path / f"{root.name}.mp4"
            _porchlight("footage", "export", "--data", root, "--camera", "porch", "--from",
                        first["start"], "--to", last["end"], "--out", export,
                        "--passphrase-file", passfile)
            exports.append(export.read_bytes())
        assert len(exports[0]) > 10_000 and exports[0] == exports[1]

        # It runs as the same member of the neighbourhood: it records again, and the gateway
        # relays a neighbour's alert to it on its authenticated stream.
        hubs["restored"] = Running("run", "--http", "--data", restored, "--listen", "127.0.0.1:0")
        assert _wait_for(lambda: len(_segments(restored)) >= len(back) + 2)
        posted = _porchlight("alerts", "post", "--data", neighbour, "--category", "safety",
                             "--text", "Van idling by the school since 6 am").stdout
        alert = posted.split("queued for the gateway: ")[1].split()[0]

        def received():
            with sqlite3.connect(f"file:{restored / 'porchlight.db'}?mode=ro", uri=True) as db:
                return db.execute("select id from alerts where id = ?", [alert]).fetchall()

        assert _wait_for(received)
        out = _porchlight("alerts", "list", "--data", restored, "--json").stdout
        [seen] = [a for a in json.loads(out) if a["id"] == alert]
        assert seen["via"] == "gateway"
        assert seen["verification"] == "verified neighbourhood hub"
    finally:
        logs = {name: hub.stop() for name, hub in hubs.items()}
    assert "Traceback" not in "".join(logs.values())
