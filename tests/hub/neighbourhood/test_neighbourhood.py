"""Hubs in a neighbourhood, as real processes: a gateway, hubs that join it, alerts between them,
a hub that was offline, and two hubs on one LAN with no gateway."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Two houses on Elm Street, 50 m apart, and one 5 km away.
NEAR_A = "51.5007,-0.1246"
NEAR_B = "51.5010,-0.1240"
FAR = "51.5450,-0.1246"


def _porchlight(*args, env=None, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "hub.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=180, env=env)
    if check:
        assert done.returncode == 0, done.stderr
    return done


class Running:
    """A `porchlight run` or `porchlight gateway run` process."""

    def __init__(self, *args) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "hub.cli", *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.ready = self.proc.stdout.readline()
        assert "listening on" in self.ready, self.proc.stderr.read() if self.proc.poll() else ""

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=60) == 0
        return self.proc.stderr.read()


@pytest.fixture
def make_hub(hub_template, tmp_path):
    def make(name: str, location: str, lan: bool = False) -> Path:
        root = tmp_path / name
        shutil.copytree(hub_template, root)
        # Each hub needs its own identity: a copied template would share the hub key.
        from federation.keys import generate_signing_key, save_private_key

        save_private_key(generate_signing_key(), root / "keys" / "hub-ed25519.pem", overwrite=True)
        lat, lon = location.split(",")
        config = root / "config.toml"
        text = config.read_text().replace('name = "test-hub"', f'name = "{name}"')
        text = text.replace("location = { lat = 51.5007, lon = -0.1246 }",
                            f"location = {{ lat = {lat}, lon = {lon} }}")
        if lan:
            text += '\n[lan]\nenabled = true\nlisten = "127.0.0.1:0"\ninterfaces = ["127.0.0.1"]\n'
        config.write_text(text)
        return root
    return make


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
    out = _porchlight("join", "--data", hub, url, code).stdout
    assert "joined Elm Street" in out


def _alerts(hub: Path) -> list[dict]:
    return json.loads(_porchlight("alerts", "list", "--data", hub, "--json").stdout)


def _wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def test_alert_reaches_neighbours_in_range_and_not_far_away(gateway, make_hub):
    author, near, far = make_hub("author", NEAR_A), make_hub("near", NEAR_B), make_hub("far", FAR)
    for hub in (author, near, far):
        _join(gateway, hub)
    hubs = [Running("run", "--http", "--data", h, "--listen", "127.0.0.1:0") for h in (author, near, far)]
    try:
        photo = author.parent / "doorbell.jpg"
        photo.write_bytes(_jpeg_with_gps())
        posted = _porchlight("alerts", "post", "--data", author, "--category", "suspicious",
                             "--text", "Someone trying car doors on Elm Street",
                             "--photo", photo).stdout
        alert = posted.split("queued for the gateway: ")[1].split()[0]
        received = _wait_for(lambda: [a for a in _alerts(near) if a["id"] == alert])
        assert received[0]["verification"] == "verified neighbourhood hub"
        assert received[0]["category"] == "suspicious"
        assert received[0]["via"] == "gateway"
        assert len(received[0]["cell"]) == 15  # an H3 cell, never coordinates
        # The photo came through the gateway (the author's hub is unreachable behind NAT).
        with_photo = _wait_for(lambda: [a for a in _alerts(near)
                                        if a["attachments"] and a["attachments"][0]["local"]])
        digest = with_photo[0]["attachments"][0]["sha256"]
        assert (near / "alerts" / "attachments" / digest).read_bytes() == \
            (author / "alerts" / "attachments" / digest).read_bytes()
        time.sleep(2)
        assert _alerts(far) == []
        assert [a["verification"] for a in _alerts(author)] == ["posted by this hub"]
    finally:
        logs = [h.stop() for h in hubs]
    assert "Traceback" not in "".join(logs)


def test_offline_hub_gets_every_missed_alert_once_in_order(gateway, make_hub):
    author, sleeper = make_hub("author", NEAR_A), make_hub("sleeper", NEAR_B)
    _join(gateway, author)
    _join(gateway, sleeper)
    writer = Running("run", "--http", "--data", author, "--listen", "127.0.0.1:0")
    reader = Running("run", "--http", "--data", sleeper, "--listen", "127.0.0.1:0")
    try:
        _porchlight("alerts", "post", "--data", author, "--category", "safety", "--text", "first")
        _wait_for(lambda: len(_alerts(sleeper)) == 1)
        reader.stop()  # the sleeper goes offline
        texts = [f"missed {i}" for i in range(5)]
        for text in texts:
            _porchlight("alerts", "post", "--data", author, "--category", "safety", "--text", text)
            time.sleep(0.3)  # distinct issue times keep the order visible in the feed
        time.sleep(5)  # offline while five alerts go out, as on a flaky home connection
        assert len(_alerts(sleeper)) == 1
        reader = Running("run", "--http", "--data", sleeper, "--listen", "127.0.0.1:0")
        _wait_for(lambda: len(_alerts(sleeper)) >= 6)
        time.sleep(2)
        feed = _alerts(sleeper)
        assert [a["text"] for a in reversed(feed)] == ["first", *texts]  # once each, in order
    finally:
        writer.stop()
        reader.stop()


def test_two_hubs_on_one_lan_exchange_an_alert_without_a_gateway(make_hub):
    one, two = make_hub("one", NEAR_A, lan=True), make_hub("two", NEAR_B, lan=True)
    hubs = [Running("run", "--http", "--data", h, "--listen", "127.0.0.1:0") for h in (one, two)]
    try:
        time.sleep(3)  # mDNS announcements and browsing
        photo = one.parent / "miso.jpg"
        photo.write_bytes(_jpeg_with_gps())
        out = _porchlight("alerts", "post", "--data", one, "--category", "lost pet",
                          "--text", "Grey cat, answers to Miso", "--photo", photo).stdout
        assert "sharing image/jpeg: 0 faces blurred" in out
        feed = _wait_for(lambda: [a for a in _alerts(two) if a["attachments"][0]["local"]],
                         timeout=40)
        assert feed[0]["text"] == "Grey cat, answers to Miso"
        assert feed[0]["via"] == "lan"
        assert feed[0]["verification"].startswith("LAN neighbour")
        [attachment] = feed[0]["attachments"]
        assert attachment["type"] == "image/jpeg"
        shared = (two / "alerts" / "attachments" / attachment["sha256"]).read_bytes()
        assert shared == (one / "alerts" / "attachments" / attachment["sha256"]).read_bytes()
        assert b"GPS-51.5007" not in shared  # metadata never leaves the house
    finally:
        logs = [h.stop() for h in hubs]
    assert "LAN: found hub" in logs[0] and "LAN: found hub" in logs[1]


def _jpeg_with_gps() -> bytes:
    """A JPEG carrying an APP1 (EXIF) segment with a location in it, as phones write them."""
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".jpg", np.full((240, 320, 3), (90, 120, 150), np.uint8))
    exif = b"Exif\x00\x00GPS-51.5007,-0.1246"
    app1 = b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif
    data = buf.tobytes()
    return data[:2] + app1 + data[2:]


def test_posting_needs_neighbours_a_location_and_a_category(make_hub, tmp_path):
    hub = make_hub("lonely", NEAR_A)
    done = _porchlight("alerts", "post", "--data", hub, "--category", "lost pet", "--text", "x",
                       check=False)
    assert done.returncode == 2
    assert done.stderr == ("porchlight: error: this hub has no neighbours yet: join a gateway "
                           "with `porchlight join URL CODE`, or enable [lan] in config.toml\n")
    done = _porchlight("alerts", "post", "--data", hub, "--category", "gossip", "--text", "x",
                       check=False)
    assert done.stderr == ("porchlight: error: --category: 'gossip' is not a category (choose one "
                           "of: crime, safety, suspicious, unknown visitor, lost pet, "
                           "neighbourly)\n")
    assert _alerts(hub) == []


def test_a_new_hub_finds_its_gateway_on_the_lan(tmp_path, make_hub):
    data = tmp_path / "lan-gateway"
    _porchlight("gateway", "init", "--data", data, "--name", "Elm Street")
    running = Running("gateway", "run", "--data", data, "--listen", "127.0.0.1:0", "--lan",
                      "--lan-interface", "127.0.0.1")
    try:
        url = running.ready.split(" on ", 1)[1].split(" as ")[0]
        hub = make_hub("newcomer", NEAR_A, lan=True)
        time.sleep(1)
        code = _porchlight("gateway", "invite", "--data", data).stdout.strip()
        out = _porchlight("join", "--data", hub, code).stdout
        assert f"on the LAN at {url}" in out
        assert "joined Elm Street" in out
    finally:
        running.stop()


def test_an_event_is_shared_on_the_lan_with_its_clip(make_hub, passfile):
    """`alerts post --event ID` shares the event's snapshot and its clip, faces blurred."""
    one, two = make_hub("one", NEAR_A, lan=True), make_hub("two", NEAR_B, lan=True)
    _porchlight("camera", "add", "--data", one, "yard", "--synthetic", "--mode", "motion")
    config = one / "config.toml"
    config.write_text(config.read_text().replace(
        'type = "synthetic"', 'type = "synthetic"\nscenario = "walking_figure"\nloop_seconds = 15.0'))
    hubs = [Running("run", "--http", "--data", h, "--listen", "127.0.0.1:0") for h in (one, two)]
    try:
        events = _wait_for(lambda: json.loads(_porchlight(
            "events", "list", "--data", one, "--json").stdout), timeout=60)
        out = _porchlight("alerts", "post", "--data", one, "--category", "suspicious", "--text",
                          "Who is this?", "--event", events[0]["id"], "--passphrase-file",
                          passfile).stdout
        assert "sharing image/jpeg, video/mp4: " in out
        feed = _wait_for(lambda: [a for a in _alerts(two)
                                  if a["attachments"] and all(x["local"] for x in a["attachments"])],
                         timeout=60)
        clip = next(a for a in feed[0]["attachments"] if a["type"] == "video/mp4")
        import av

        with av.open(str(two / "alerts" / "attachments" / clip["sha256"])) as container:
            assert sum(1 for _ in container.decode(video=0)) > 0
    finally:
        for hub in hubs:
            hub.stop()
