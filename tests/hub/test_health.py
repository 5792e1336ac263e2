"""`GET /healthz` of a running hub: each camera's state, and `degraded` while one is down."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

DEADLINE_S = 60.0


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:
        return server.getsockname()[1]


def _health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as reply:
        assert reply.status == 200
        return json.load(reply)


def _wait(port: int, done) -> dict:
    deadline = time.monotonic() + DEADLINE_S
    while not done(health := _health(port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return health


def test_healthz_reports_each_camera_and_degraded_while_one_is_down(hub_dir, cli):
    assert cli("camera", "add", "--data", hub_dir, "porch", "--synthetic", "--no-analysis")[0] == 0
    # Nothing listens there: the camera is refused at once, so it is down.
    assert cli("camera", "add", "--data", hub_dir, "door", "--rtsp",
               f"rtsp://127.0.0.1:{_closed_port()}/live", "--no-analysis")[0] == 0
    hub = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "run", "--data", str(hub_dir), "--listen",
         "127.0.0.1:0", "--http"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(hub.stdout.readline().rsplit(":", 1)[1])
        degraded = _wait(port, lambda h: h["cameras"].get("porch", {}).get("state") == "online"
                         and h["cameras"].get("door", {}).get("state") == "unreachable")
        assert cli("camera", "remove", "--data", hub_dir, "door")[0] == 0
        healthy = _wait(port, lambda h: h["status"] == "ok")
    finally:
        hub.terminate()
        hub.wait(timeout=60)

    assert degraded["status"] == "degraded" and degraded["down"] == ["door"]
    assert {name: camera["state"] for name, camera in degraded["cameras"].items()} == {
        "porch": "online", "door": "unreachable"}
    assert degraded["cameras"]["door"]["since"].endswith("Z")
    # Unauthenticated: states only, never a camera's address.
    assert "127.0.0.1" not in json.dumps(degraded)
    assert (healthy["status"], healthy["down"], list(healthy["cameras"])) == ("ok", [], ["porch"])
