"""Errors a newcomer meets are one line on stderr with a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.cameras.sources import build_source
from hub.config import CameraEntry
from hub.errors import ConfigError
from plugins.cameras.rtsp import RtspCamera, check_camera_url

STATE_DEADLINE_S = 60.0


def porchlight(*args, **kwargs) -> subprocess.CompletedProcess:
    """Run the real `porchlight` command in a process of its own."""
    return subprocess.run([sys.executable, "-m", "hub.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture
def busy_port():
    """Return a port on 127.0.0.1 that another process (this test) listens on."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_run_on_a_port_in_use_says_so_in_one_line(hub_dir, busy_port, cli):
    assert cli("camera", "add", "--data", hub_dir, "porch", "--synthetic")[0] == 0

    done = porchlight("run", "--data", hub_dir, "--listen", f"127.0.0.1:{busy_port}")

    assert (done.returncode, done.stdout, done.stderr) == (
        1, "", f"porchlight: error: 127.0.0.1:{busy_port} is in use: is another hub running? "
               "(--listen to choose another)\n")
    # It stopped before any camera started: nothing was recorded.
    assert json.loads(cli("footage", "list", "--data", hub_dir, "--json")[1]) == []


def test_run_on_the_configured_port_in_use_says_so_too(hub_dir, busy_port):
    config = hub_dir / "config.toml"
    config.write_text(config.read_text().replace('listen = "127.0.0.1:8765"',
                                                 f'listen = "127.0.0.1:{busy_port}"'))

    done = porchlight("run", "--data", hub_dir)

    assert (done.returncode, done.stderr) == (
        1, f"porchlight: error: 127.0.0.1:{busy_port} is in use: is another hub running? "
           "(--listen to choose another)\n")


def test_gateway_run_on_a_port_in_use_says_so_in_one_line(tmp_path, busy_port, cli):
    assert cli("gateway", "init", "--data", tmp_path / "gw", "--name", "Elm Street")[0] == 0

    done = porchlight("gateway", "run", "--data", tmp_path / "gw", "--listen",
                      f"127.0.0.1:{busy_port}")

    assert (done.returncode, done.stdout, done.stderr) == (
        1, "", f"porchlight: error: 127.0.0.1:{busy_port} is in use: is another gateway "
               "running? (--listen to choose another)\n")


def test_run_refuses_a_listen_address_that_is_not_host_and_port(hub_dir):
    done = porchlight("run", "--data", hub_dir, "--listen", "8765")

    assert (done.returncode, done.stderr) == (
        2, "porchlight: error: --listen must be HOST:PORT (example: 127.0.0.1:8765), "
           "got '8765'\n")


@pytest.mark.parametrize("args", [["footage", "list"], ["events", "list"], ["camera", "list"]])
def test_a_closed_pipe_ends_quietly(hub_dir, args):
    """As `porchlight footage list | head` when head has read enough: no BrokenPipeError."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", *args, "--data", str(hub_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # the reader is gone before the first line is written
    stderr = process.stderr.read()
    code = process.wait(timeout=60)

    assert (code, stderr) == (128 + signal.SIGPIPE, "")


def _wait_for_states(cli, root, wanted: set[str]) -> dict[str, dict]:
    deadline = time.monotonic() + STATE_DEADLINE_S
    while True:
        cameras = {c["name"]: c for c in json.loads(
            cli("camera", "list", "--data", root, "--json")[1])}
        if all(cameras[name]["state"] == "unreachable" for name in wanted) or \
                time.monotonic() > deadline:
            return cameras
        time.sleep(0.2)


def test_a_camera_host_that_does_not_resolve_is_named(hub_dir, cli):
    # .invalid never resolves (RFC 2606), on any network.
    assert cli("camera", "add", "--data", hub_dir, "porch", "--rtsp",
               "rtsp://viewer:secret@porch-cam.invalid:554/live")[0] == 0
    assert cli("camera", "add", "--data", hub_dir, "door", "--onvif", "door-cam.invalid:80")[0] == 0
    hub = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "run", "--data", str(hub_dir), "--listen",
         "127.0.0.1:0", "--http"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in hub.stdout.readline()
        cameras = _wait_for_states(cli, hub_dir, {"porch", "door"})
    finally:
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(timeout=60) == 0
        log = hub.stderr.read()

    assert cameras["porch"]["state"] == "unreachable"
    assert cameras["porch"]["detail"] == (
        "camera porch: the camera's host porch-cam.invalid cannot be resolved (Name or service "
        "not known); check the name in its URL, or use its IP address")
    assert cameras["door"]["state"] == "unreachable"
    assert cameras["door"]["detail"] == (
        "the ONVIF device's host door-cam.invalid cannot be resolved (Name or service not "
        "known); check the host, or use its IP address")
    assert "Input/output error" not in log and "secret" not in log
    assert "cannot be resolved" in log


@pytest.mark.parametrize(("url", "why"), [
    ("http://cam.lan/live", "a camera URL starts with rtsp:// or rtsps:// "
                            "(example: rtsp://192.168.1.20:554/stream1)"),
    ("http://admin:hunter2@cam.lan/live", "a camera URL starts with rtsp:// or rtsps:// "
                                          "(example: rtsp://192.168.1.20:554/stream1)"),
    ("cam.lan/live", "a camera URL starts with rtsp:// or rtsps:// "
                     "(example: rtsp://192.168.1.20:554/stream1)"),
    ("rtsp://admin:hunter2@cam.lan:port/live", "the port in a camera URL is a number from 1 "
                                               "to 65535 (example: rtsp://192.168.1.20:554/stream1)"),
    ("rtsp://cam.lan:70000/live", "the port in a camera URL is a number from 1 to 65535 "
                                  "(example: rtsp://192.168.1.20:554/stream1)"),
    ("rtsp:///live", "a camera URL names the camera's host, with no spaces "
                     "(example: rtsp://192.168.1.20:554/stream1)"),
])
def test_camera_add_says_what_a_camera_url_looks_like(hub_dir, cli, url, why):
    before = (hub_dir / "config.toml").read_bytes()

    code, out, err = cli("camera", "add", "--data", hub_dir, "porch", "--rtsp", url)

    assert (code, out, err) == (1, "", f"porchlight: error: camera porch: url: {why}\n")
    assert "hunter2" not in err
    assert (hub_dir / "config.toml").read_bytes() == before
    assert not (hub_dir / "secrets" / "porch.password").exists()


def test_a_password_written_into_config_toml_is_refused_without_echoing_it(tmp_path):
    entry = CameraEntry.model_validate({"name": "porch", "type": "rtsp",
                                        "url": "rtsp://admin:hunter2@cam.lan/live"})

    with pytest.raises(ConfigError) as caught:
        build_source(entry, {"rtsp": RtspCamera}, tmp_path)

    assert str(caught.value) == (
        "camera porch: url: a camera URL in config.toml holds no user or password: set user and "
        "password instead (`porchlight camera add` moves them for you)")


@given(st.text(max_size=200))
def test_camera_url_check_accepts_only_rtsp_urls_with_a_host(text):
    try:
        check_camera_url(text)
    except ValueError:
        return
    parts = urlsplit(text)
    assert parts.scheme.lower() in ("rtsp", "rtsps") and parts.hostname
    assert "@" not in parts.netloc and not any(c.isspace() for c in text)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=30),
       st.sampled_from(["rtsp", "http", "rtsps", ""]), st.sampled_from(["cam.lan", "", "[::1]"]))
def test_camera_url_errors_never_echo_a_password(password, scheme, host):
    url = f"{scheme}://admin:{password}@{host}/live"

    with pytest.raises(ValueError) as caught:
        check_camera_url(url)

    assert password not in str(caught.value)


@given(st.from_regex(r"rtsps?://[a-z0-9][a-z0-9.-]{0,30}(/[A-Za-z0-9_/.-]{0,40})?",
                     fullmatch=True), st.none() | st.integers(1, 65535))
def test_camera_url_check_accepts_rtsp_urls(url, port):
    if port is not None:
        scheme, rest = url.split("://", 1)
        host, slash, path = rest.partition("/")
        url = f"{scheme}://{host}:{port}{slash}{path}"

    check_camera_url(url)
