"""Motion analysis on every camera, in both modes, unless the owner turns it off."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from hub.config import parse_config
from hub.errors import ConfigError

EVENT_DEADLINE_S = 120.0  # the first walker closes its event about 11 s after the camera starts


class HubProcess:
    """A `porchlight run` subprocess; its log is read when it stops."""

    def __init__(self, root) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", "--http", "--data", str(root), "--listen",
             "127.0.0.1:0", "--http"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "listening on" in self.proc.stdout.readline()

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0
        return self.proc.stderr.read()


def _events(cli, root, camera):
    code, out, err = cli("events", "list", "--data", root, "--camera", camera, "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_continuous_camera_raises_events_unless_analysis_is_off(hub_dir, cli):
    assert cli("camera", "add", "--data", hub_dir, "yard", "--synthetic",
               "--scenario", "walking_figure") == (
        0, "added camera yard (synthetic, continuous, motion analysis)\n", "")
    assert cli("camera", "add", "--data", hub_dir, "shed", "--synthetic",
               "--scenario", "walking_figure", "--no-analysis") == (
        0, "added camera shed (synthetic, continuous, no analysis)\n", "")
    hub = HubProcess(hub_dir)
    try:
        deadline = time.monotonic() + EVENT_DEADLINE_S
        while not (events := _events(cli, hub_dir, "yard")) and time.monotonic() < deadline:
            time.sleep(0.5)
        # The same scene on the camera without analysis, checked once the other one had its
        # event: both cameras saw the walker.
        shed_events = _events(cli, hub_dir, "shed")
    finally:
        log = hub.stop()

    assert events, "no event from the continuous camera"
    assert events[0]["snapshot"] is not None and events[0]["segments"]
    assert shed_events == []
    assert "camera yard: started (synthetic, continuous)" in log
    assert "camera shed: started (synthetic, continuous, no analysis)" in log
    footage = json.loads(cli("footage", "list", "--data", hub_dir, "--json")[1])
    assert {s["camera"] for s in footage if s["media_type"] == "video/mp4"} == {"yard", "shed"}


@pytest.mark.parametrize(("args", "code", "error"), [
    (["--synthetic", "--mode", "motion", "--no-analysis"], 2,
     "--no-analysis does not go with --mode motion: a motion camera records only around the "
     "motion that analysis finds"),
    (["--synthetic", "--scenario", "ufo"], 1,
     "camera yard: scenario: unknown scenario 'ufo'; choose one of: walking_figure, car, "
     "passers_by, light_switch, cloud_shadow, sensor_noise, swaying_branch"),
    (["--rtsp", "rtsp://cam.lan/live", "--scenario", "car"], 2,
     "--scenario is for --synthetic cameras"),
])
def test_camera_add_refuses_bad_analysis_settings(hub_dir, cli, args, code, error):
    before = (hub_dir / "config.toml").read_bytes()

    result = cli("camera", "add", "--data", hub_dir, "yard", *args)

    assert result == (code, "", f"porchlight: error: {error}\n")
    assert (hub_dir / "config.toml").read_bytes() == before


def test_config_refuses_a_motion_camera_without_analysis():
    text = ('[hub]\nname = "h"\n[[cameras]]\nname = "yard"\ntype = "synthetic"\n'
            'mode = "motion"\nanalysis = false\n')

    with pytest.raises(ConfigError) as caught:
        parse_config(text)

    assert str(caught.value) == ('config.toml: cameras.0: mode = "motion" records only around '
                                 'motion, so it needs analysis = true')


def test_config_takes_analysis_as_a_boolean_only():
    base = '[hub]\nname = "h"\n[[cameras]]\nname = "yard"\ntype = "synthetic"\n'

    assert parse_config(base).cameras[0].analysis is True
    assert parse_config(base + "analysis = false\n").cameras[0].analysis is False
    with pytest.raises(ConfigError) as caught:
        parse_config(base + 'analysis = "no"\n')
    assert str(caught.value) == "config.toml: cameras.0.analysis: Input should be a valid boolean"
