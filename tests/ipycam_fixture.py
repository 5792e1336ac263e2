"""Run ipycam, a virtual ONVIF + RTSP camera, inside a network namespace the test creates.

ipycam binds 0.0.0.0 and multicasts WS-Discovery, so it never runs in the machine's own network:
`start_ipycam` creates a namespace joined to this one by a veth pair on a private /30 in
10.231.0.0/16, runs tests/ipycam_peer.py in it under ipycam's own virtualenv (.venv-ipycam, made
by `scripts/setup --test`), and `VirtualCamera.stop` stops the camera by its pid and deletes the
namespace, which removes the veth pair with it.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import random
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.rtsp_fixture import read_line

ROOT = Path(__file__).resolve().parents[1]
IPYCAM_PYTHON = ROOT / ".venv-ipycam" / "bin" / "python"
PEER_SCRIPT = Path(__file__).with_name("ipycam_peer.py")
ONVIF_PORT = 8080  # ipycam's defaults
RTSP_PORT = 8554
POOL = ipaddress.ip_network("10.231.0.0/16")


@functools.cache
def ipycam_missing() -> str | None:
    """Return why ipycam cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces (CI runs as root)"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip`: apt-get install iproute2"
    if not IPYCAM_PYTHON.exists():
        return "ipycam's virtualenv .venv-ipycam is missing: run scripts/setup --test"
    if shutil.which("ffmpeg") is None:
        return "ipycam's RTSP server needs ffmpeg: apt-get install ffmpeg"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _free_subnet() -> ipaddress.IPv4Network:
    """Pick a /30 in the pool that no interface here uses yet."""
    used = subprocess.run(["ip", "-o", "-4", "addr", "show"], check=True, capture_output=True,
                          text=True).stdout
    subnets = list(POOL.subnets(new_prefix=30))
    for _ in range(100):
        subnet = random.choice(subnets)
        if not any(str(a) in used for a in subnet):
            return subnet
    raise RuntimeError(f"no free /30 left in {POOL}")


@dataclass
class VirtualCamera:
    """An ipycam running in its own namespace; `host` is its address, `peer` ours on the veth."""

    namespace: str
    host: str
    peer: str
    user: str
    password: str
    process: subprocess.Popen | None = None
    onvif_port: int = ONVIF_PORT
    rtsp_port: int = RTSP_PORT
    workdir: Path | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop the camera by its pid, then delete the namespace and its veth pair."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, timeout=30)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_ipycam(*, user: str = "admin", password: str = "", name: str = "Porch Test Camera",
                 ready_timeout: float = 30.0) -> VirtualCamera:
    """Create a namespace with a veth to this one, start ipycam in it, wait until it listens."""
    subnet = _free_subnet()
    peer, host = (str(a) for a in subnet.hosts())
    tag = f"{os.getpid() % 10000}{random.randrange(100):02d}"
    namespace, outside, inside = f"plcam-{tag}", f"plv{tag}a", f"plv{tag}b"
    camera = VirtualCamera(namespace, host, peer, user, password,
                           workdir=Path(tempfile.mkdtemp(prefix="ipycam-")))
    try:
        _ip("netns", "add", namespace)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", namespace)
        _ip("addr", "add", f"{peer}/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("-n", namespace, "addr", "add", f"{host}/30", "dev", inside)
        _ip("-n", namespace, "link", "set", inside, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        # ipycam multicasts its WS-Discovery Hello; the namespace has no default route.
        _ip("-n", namespace, "route", "add", "224.0.0.0/4", "dev", inside)
    except subprocess.CalledProcessError as err:
        camera.stop()
        subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=30)
        raise RuntimeError(f"cannot set up the namespace: {err.stderr.strip()}") from err
    stderr = tempfile.TemporaryFile()
    # `ip netns exec` execs the command, so the pid is ipycam's own.
    camera.process = subprocess.Popen(
        ["ip", "netns", "exec", namespace, str(IPYCAM_PYTHON), str(PEER_SCRIPT), "--ip", host,
         "--user", user, "--password", password, "--name", name],
        stdout=subprocess.PIPE, stderr=stderr, cwd=camera.workdir)
    try:
        line = read_line(camera.process, ready_timeout)
        if line.strip() != b"ready":
            stderr.seek(0)
            detail = stderr.read().decode(errors="replace").strip()[-2000:]
            camera.stop()
            raise RuntimeError(f"ipycam did not start: {detail or line!r}")
        return camera
    finally:
        stderr.close()


