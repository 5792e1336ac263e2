"""A pytest fixture that runs real RTSP servers (tests/rtsp_server.py) for a test.

The server runs under Debian's /usr/bin/python3, whose `gi` bindings for GstRtspServer a
virtualenv cannot import. Tests that use the fixture are skipped, with the reason, on a
machine without them. Import the fixture into a test module to use it:

    from tests.rtsp_fixture import rtsp_server  # noqa: F401

    def test_camera(rtsp_server):
        server = rtsp_server(files={"/cam1": clip_path}, user="u", password="p")
        url = server.url("/cam1")
        assert server.connections() == 0  # client connections the server has accepted
        server.served_seconds()  # how long clients were streamed to, from PLAY to close
"""

from __future__ import annotations

import functools
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
HOST = "127.0.0.1"
# An orphaned server (the test run was killed) exits by itself after this long.
SERVER_LIFETIME_SECONDS = 900


@functools.cache
def gst_rtsp_missing() -> str | None:
    """Return why the RTSP server cannot run here, or None when it can."""
    probe = ("import gi; gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import GstRtspServer")
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"cannot run {SYSTEM_PYTHON}: {err}"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        return (f"{SYSTEM_PYTHON} cannot import gi.repository.GstRtspServer ({last}); "
                "apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp")
    return None


def read_line(process: subprocess.Popen, timeout: float) -> bytes:
    """Read one line of a child's stdout, giving up after timeout or when the child exits."""
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            break
        readable, _, _ = select.select([process.stdout], [], [], remaining)
        if readable:
            chunk = os.read(process.stdout.fileno(), 1)
            if not chunk:
                break
            line += chunk
    return line


@dataclass
class RtspServer:
    """A running test RTSP server on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    user: str | None = None
    password: str | None = None
    clients_file: Path | None = None

    def client_events(self) -> list[tuple[int, str, float]]:
        """Return (client number, "connected"/"play"/"closed", unix time) for every client event."""
        if self.clients_file is None or not self.clients_file.exists():
            return []
        events = []
        for line in self.clients_file.read_text().splitlines():
            number, event, at = line.split()
            events.append((int(number), event, float(at)))
        return events

    def connections(self) -> int:
        """Return how many client connections the server has accepted so far."""
        return sum(event == "connected" for _, event, _ in self.client_events())

    def served_seconds(self) -> float:
        """Return the seconds clients were streamed to, each from its PLAY to its close (or now)."""
        played: dict[int, float] = {}
        closed: dict[int, float] = {}
        for number, event, at in self.client_events():
            if event == "play":
                played.setdefault(number, at)
            elif event == "closed":
                closed[number] = at
        now = time.time()
        return sum(closed.get(number, now) - at for number, at in played.items())

    def url(self, mount: str, *, user: str | None = None, password: str | None = None) -> str:
        """Return the rtsp:// URL of a mount, with the server's credentials unless overridden."""
        user = self.user if user is None else user
        password = self.password if password is None else password
        auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
        return f"rtsp://{auth}{HOST}:{self.port}{mount}"

    def stop(self) -> None:
        """Stop the server by its process id, forcefully if it does not exit in time."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.clients_file is not None:
            self.clients_file.unlink(missing_ok=True)


def start_rtsp_server(
    *,
    mounts: dict[str, str] | None = None,
    files: dict[str, str | Path] | None = None,
    user: str | None = None,
    password: str | None = None,
    auth: str = "digest",
    ready_timeout: float = 20.0,
    port: int = 0,
) -> RtspServer:
    """Start tests/rtsp_server.py on a free port and wait until it listens."""
    handle, clients_file = tempfile.mkstemp(prefix="rtsp-clients-")
    os.close(handle)
    args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--host", HOST, "--port", str(port),
            "--lifetime", str(SERVER_LIFETIME_SECONDS), "--clients-file", clients_file]
    for mount, launch in (mounts or {}).items():
        args += ["--mount", f"{mount}={launch}"]
    for mount, path in (files or {}).items():
        args += ["--file", f"{mount}={path}"]
    if user is not None:
        args += ["--user", user, "--password", password or "", "--auth", auth]
    # Port 0 lets the server bind a free port itself and report it: no race with other
    # processes between picking a port and binding it.
    stderr = tempfile.TemporaryFile()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr)
    server = RtspServer(process, 0, user, password, Path(clients_file))
    deadline = time.monotonic() + ready_timeout
    try:
        line = read_line(process, deadline - time.monotonic())
        if not line.startswith(b"READY "):
            server.stop()
            stderr.seek(0)
            detail = stderr.read().decode(errors="replace").strip()
            raise RuntimeError(f"RTSP server did not start: {detail or line!r}")
        server.port = int(line.split()[1])
        return server
    finally:
        stderr.close()


@pytest.fixture
def rtsp_server() -> Iterator[Callable[..., RtspServer]]:
    """Yield a factory that starts RTSP servers; each is stopped by pid after the test."""
    reason = gst_rtsp_missing()
    if reason:
        pytest.skip(reason)
    started: list[RtspServer] = []

    def start(**kwargs: object) -> RtspServer:
        server = start_rtsp_server(**kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
