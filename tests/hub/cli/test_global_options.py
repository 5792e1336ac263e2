"""`--data` before or after the command, and `--version`."""

from __future__ import annotations

import importlib.metadata
import json

import pytest


def test_version_prints_the_installed_version(cli):
    code, out, err = cli("--version")

    assert (code, out, err) == (0, f"porchlight {importlib.metadata.version('porchlight')}\n", "")


@pytest.mark.parametrize("where", ["before", "after"])
def test_data_works_before_or_after_the_command(hub_dir, cli, where):
    args = ["camera", "add", "porch", "--synthetic"]
    args = ["--data", hub_dir, *args] if where == "before" else [*args, "--data", hub_dir]

    assert cli(*args)[0] == 0
    listed = ["--data", hub_dir, "camera", "list", "--json"] if where == "before" else \
        ["camera", "list", "--json", "--data", hub_dir]
    code, out, err = cli(*listed)

    assert (code, err) == (0, "")
    assert [camera["name"] for camera in json.loads(out)] == ["porch"]


def test_data_before_a_tools_command_satisfies_its_required_data(tmp_path, cli):
    code, out, _ = cli("--data", tmp_path / "gw", "gateway", "init", "--name", "Elm Street")

    assert code == 0 and "created gateway 'Elm Street'" in out
    assert (tmp_path / "gw").is_dir()


def test_a_tools_command_without_data_says_it_needs_it(cli):
    assert cli("gateway", "invite") == (
        2, "", "porchlight: error: `porchlight gateway invite` needs --data DIR\n")


def test_data_given_twice_differently_is_refused(hub_dir, tmp_path, cli):
    assert cli("--data", hub_dir, "camera", "list", "--data", tmp_path) == (
        2, "", f"porchlight: error: --data is given twice ({hub_dir} and {tmp_path}); "
               "give it once\n")


def test_data_before_a_command_that_takes_none_is_refused(tmp_path, cli):
    assert cli("--data", tmp_path, "camera", "discover", "--timeout", "0.1") == (
        2, "", "porchlight: error: `porchlight camera discover` takes no --data\n")
