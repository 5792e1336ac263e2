"""`camera set` turns recording or analysis on and off in config.toml; `camera list` shows it."""

from __future__ import annotations

import json


def _listed(cli, root) -> dict:
    code, out, err = cli("camera", "list", "--data", root, "--json")
    assert code == 0, err
    return {c["name"]: (c["recording"], c["analysis"]) for c in json.loads(out)}


def test_camera_set_turns_recording_and_analysis_off_and_on(hub_dir, cli):
    assert cli("camera", "add", "--data", hub_dir, "porch", "--synthetic")[0] == 0
    assert _listed(cli, hub_dir) == {"porch": (True, True)}

    assert cli("camera", "set", "--data", hub_dir, "porch", "--recording", "off") == (
        0, "camera porch: recording off, motion analysis on\n", "")
    assert cli("camera", "set", "--data", hub_dir, "porch", "--analysis", "off") == (
        0, "camera porch: recording off, motion analysis off\n", "")
    assert _listed(cli, hub_dir) == {"porch": (False, False)}
    code, out, _ = cli("camera", "list", "--data", hub_dir)
    assert out.split() == ["porch", "synthetic", "continuous", "not", "running", "(recording",
                           "off,", "no", "analysis)"]

    assert cli("camera", "set", "--data", hub_dir, "porch", "--recording", "on",
               "--analysis", "on") == (0, "camera porch: recording on, motion analysis on\n", "")
    assert _listed(cli, hub_dir) == {"porch": (True, True)}


def test_camera_set_refuses_what_it_cannot_do_and_changes_nothing(hub_dir, cli):
    assert cli("camera", "add", "--data", hub_dir, "drive", "--synthetic", "--mode",
               "motion")[0] == 0
    before = (hub_dir / "config.toml").read_bytes()

    assert cli("camera", "set", "--data", hub_dir, "drive") == (
        2, "", "porchlight: error: say what to change: --recording on|off, --analysis on|off\n")
    assert cli("camera", "set", "--data", hub_dir, "drive", "--analysis", "off") == (
        2, "", 'porchlight: error: camera drive records only around motion (mode = "motion"): '
        "its motion analysis cannot be turned off\n")
    assert cli("camera", "set", "--data", hub_dir, "ghost", "--recording", "off") == (
        2, "", "porchlight: error: no camera 'ghost' in config.toml\n")
    code, _, err = cli("camera", "set", "--data", hub_dir, "drive", "--recording", "maybe")
    assert code == 2 and "argument --recording: invalid choice: 'maybe'" in err
    assert (hub_dir / "config.toml").read_bytes() == before
