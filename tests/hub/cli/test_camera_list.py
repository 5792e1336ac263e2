"""`camera list` shows live states only while a hub runs, and `not running` otherwise."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

ONLINE_DEADLINE_S = 60.0


def _states(cli, root) -> dict[str, str]:
    code, out, err = cli("camera", "list", "--data", root, "--json")
    assert code == 0, err
    return {camera["name"]: camera["state"] for camera in json.loads(out)}


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_camera_list_says_not_running_once_the_hub_is_gone(hub_dir, cli, stop):
    assert cli("camera", "add", "--data", hub_dir, "porch", "--synthetic", "--no-analysis")[0] == 0
    assert _states(cli, hub_dir) == {"porch": "not running"}
    hub = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "run", "--data", str(hub_dir), "--listen",
         "127.0.0.1:0", "--http"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "listening on" in hub.stdout.readline()
        deadline = time.monotonic() + ONLINE_DEADLINE_S
        while (states := _states(cli, hub_dir)) != {"porch": "online"} and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        assert states == {"porch": "online"}
    finally:
        hub.send_signal(stop)
        hub.wait(timeout=60)

    # Stopped cleanly the hub stored `stopped`; killed it stored nothing after `online`:
    # neither is true of a hub that is not running.
    assert _states(cli, hub_dir) == {"porch": "not running"}
    code, out, _ = cli("camera", "list", "--data", hub_dir)
    assert out.split()[:4] == ["porch", "synthetic", "continuous", "not"]


def test_a_camera_can_be_added_after_the_last_one_was_removed(hub_dir, cli):
    assert cli("camera", "add", "--data", hub_dir, "porch", "--synthetic")[0] == 0
    assert cli("camera", "remove", "--data", hub_dir, "porch")[0] == 0

    # Removing the last camera once left `cameras = []`, which no [[cameras]] table can join.
    assert cli("camera", "add", "--data", hub_dir, "door", "--synthetic") == (
        0, "added camera door (synthetic, continuous, motion analysis)\n", "")
    assert _states(cli, hub_dir) == {"door": "not running"}
    assert "cameras = []" not in (hub_dir / "config.toml").read_text()
