"""Notifications from a real `porchlight run --http` hub to real peers on loopback."""

from __future__ import annotations

import asyncio
import base64
import signal
import sqlite3
import sys
import time

import pytest

from tests.notify_peers import Receiver, closed_port
from tests.plugins.test_apprise import Mailbox
from tests.rtsp_fixture import rtsp_server  # noqa: F401 - pytest fixture

SECRET = "s3cret-s3cret-s3cret-0123456789"
CAMERA = """
[[cameras]]
name = "yard"
type = "synthetic"
scenario = "walking_figure"
loop_seconds = 15.0
width = 320
height = 180
"""


def _webhook(name: str, url: str, extra: str = "") -> str:
    return (f'\n[[notifiers]]\ntype = "webhook"\nname = "{name}"\nurl = "{url}"\n'
            f'secret = {{ env = "HOOK_SECRET" }}\n{extra}')


class HubProcess:
    """`porchlight run --http` in a subprocess; its log goes to a file read when it stops."""

    def __init__(self, root, log_path) -> None:
        self.root, self.log_path = root, log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, env: dict) -> HubProcess:
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "run", "--http", "--data", str(self.root),
            "--listen", "127.0.0.1:0", stdout=asyncio.subprocess.PIPE, stderr=self.log, env=env)
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 60)).decode()
        assert "listening on http://127.0.0.1:" in line, self.log_path.read_text()
        return self

    async def stop(self) -> tuple[int, str]:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), 60)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
            self.log.close()
        return code, self.log_path.read_text()


def _segments(root) -> int:
    """Count the segments the running hub has sealed (read-only: the hub holds the writer)."""
    with sqlite3.connect(f"file:{root / 'porchlight.db'}?mode=ro", uri=True) as db:
        return db.execute("select count(*) from segments where camera = 'yard'").fetchone()[0]


@pytest.fixture
def hub_env(monkeypatch):
    import os

    return dict(os.environ, HOOK_SECRET=SECRET)


async def test_failing_targets_never_stop_recording_and_a_lan_webhook_gets_the_snapshot(
        hub_dir, tmp_path, hub_env):
    good = await Receiver(SECRET.encode()).start()
    erroring = await Receiver(SECRET.encode(), lambda n: 500).start()
    hanging = await Receiver(SECRET.encode(), lambda n: "hang").start()
    down = f"http://127.0.0.1:{closed_port()}/hook"
    config = hub_dir / "config.toml"
    config.write_text(
        config.read_text().replace("segment_seconds = 10.0", "segment_seconds = 1.0") + CAMERA
        + "\n[notify]\nmotion_cooldown_s = 0\nattempts = 3\nbackoff_s = 0.5\ntimeout_s = 2\n"
        + _webhook("good", good.url, 'lan = true\ntriggers = ["motion"]\n')
        + _webhook("erroring", erroring.url, 'triggers = ["motion"]\n')
        + _webhook("hanging", hanging.url, 'triggers = ["motion"]\n')
        + _webhook("down", down, 'triggers = ["motion"]\n'))
    hub = await HubProcess(hub_dir, tmp_path / "hub.log").start(hub_env)
    try:
        # The first walker's event closes about 11 s after the start (generous on a busy box).
        await good.wait_for(1, timeout=120)
        # Every failing target has failed its first notification three times, with backoff,
        # or is hanging on it; all the while the camera records.
        await erroring.wait_for(3, timeout=60)
        await hanging.wait_for(2, timeout=60)
        start_count, started = _segments(hub_dir), time.monotonic()
        await erroring.wait_for(6, timeout=60)  # the next motion notification, failing again
        sealed, elapsed = _segments(hub_dir) - start_count, time.monotonic() - started
    finally:
        code, log = await hub.stop()
        for receiver in (good, erroring, hanging):
            await receiver.stop()
    print(f"\nrecording while three targets fail: {sealed} one-second segments sealed in "
          f"{elapsed:.1f} s (ratio {sealed / elapsed:.2f})")
    assert code == 0, log
    motion = good.accepted[0]
    assert motion["trigger"] == "motion" and motion["camera"] == "yard"
    assert motion["title"] == "Motion on yard" and motion["link"] == "/cameras/yard"
    assert base64.b64decode(motion["snapshot"])[:3] == b"\xff\xd8\xff"  # a JPEG
    # Only the LAN target gets pictures.
    assert all("snapshot" not in hit.json() for hit in erroring.hits + hanging.hits)
    # One-second segments: recording kept up (half the nominal rate allows a busy machine).
    assert sealed >= 0.5 * elapsed - 1, (sealed, elapsed)
    gaps = [b.at - a.at for a, b in zip(erroring.hits, erroring.hits[1:3], strict=False)]
    assert gaps[0] >= 0.5 * 0.95 and gaps[1] >= 1.0 * 0.95, gaps
    assert "notifier erroring: sending failed (the receiver answered HTTP 500)" in log
    assert "notifier down: sending failed (cannot reach the receiver" in log
    assert "notifier hanging: sending failed (timed out)" in log
    assert log.count("notifier erroring: sending failed") == 1  # once per failure streak
    assert SECRET not in log and "Traceback" not in log


async def test_the_disk_nearly_full_arrives_by_mail_through_apprise(hub_dir, tmp_path, hub_env):
    from aiosmtpd.smtp import SMTP

    mailbox = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(mailbox, hostname="mail.test"),
                                      "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hub_env["MAIL_URL"] = f"mailto://127.0.0.1:{port}?from=hub@example.org&to=owner@example.org"
    config = hub_dir / "config.toml"
    # Any real disk has less than 99.99% free: the first upkeep pass finds it "nearly full".
    config.write_text(config.read_text() + '\n[notify]\ndisk_free_percent = 99.99\n'
                      'public_url = "https://hub.example.lan:8765"\n'
                      '\n[[notifiers]]\ntype = "apprise"\nname = "mail"\n'
                      'urls = [{ env = "MAIL_URL" }]\n')
    hub = await HubProcess(hub_dir, tmp_path / "hub.log").start(hub_env)
    try:
        await mailbox.wait_for(1)
    finally:
        code, log = await hub.stop()
        server.close()
        await server.wait_closed()
    assert code == 0, log
    [message] = mailbox.messages
    assert message["Subject"] == "Disk nearly full"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert text.split()[:3] == ["disk", "nearly", "full:"]
    assert "free of" in text and text.split()[-1] == "https://hub.example.lan:8765/settings"
    assert "MAIL_URL" not in log and f"127.0.0.1:{port}" not in log


def test_a_bad_notifier_stops_the_start_with_one_line(hub_dir):
    import subprocess

    config = hub_dir / "config.toml"
    config.write_text(config.read_text() + CAMERA + _webhook("hook", "http://127.0.0.1:9/x")
                      .replace("HOOK_SECRET", "UNSET_SECRET"))
    done = subprocess.run([sys.executable, "-m", "hub.cli", "run", "--http", "--data",
                           str(hub_dir), "--listen", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (
        1, "", "porchlight: error: notifiers.hook: secret: environment variable UNSET_SECRET "
               "is not set\n")
    assert _segments(hub_dir) == 0  # it stopped before any camera started


async def test_a_camera_going_down_and_coming_back_is_told(
        hub_dir, tmp_path, hub_env, rtsp_server, clip25):  # noqa: F811
    receiver = await Receiver(SECRET.encode()).start()
    server = rtsp_server(files={"/cam": clip25})
    config = hub_dir / "config.toml"
    config.write_text(config.read_text()
                      + f'\n[[cameras]]\nname = "gate"\ntype = "rtsp"\nurl = "{server.url("/cam")}"\n'
                      + _webhook("hook", receiver.url, 'triggers = ["camera"]\n'))
    hub = await HubProcess(hub_dir, tmp_path / "hub.log").start(hub_env)
    restarted = None
    try:
        async with asyncio.timeout(60):  # generous for a busy machine
            while not hub_online(hub_dir, "gate"):
                await asyncio.sleep(0.2)
        server.stop()
        await receiver.wait_for(1, timeout=90)
        restarted = await asyncio.to_thread(rtsp_server, files={"/cam": clip25},
                                            port=server.port)
        await receiver.wait_for(2, timeout=120)
    finally:
        code, log = await hub.stop()
        await receiver.stop()
        if restarted is not None:
            restarted.stop()
    assert code == 0, log
    titles = [b["title"] for b in receiver.accepted]
    assert titles[0] in ("Camera gate is down (reconnecting)", "Camera gate is down (unreachable)")
    # Online at the start is not news: the first is the drop-out, the second the return.
    assert titles[1] == "Camera gate is back"
    assert {b["link"] for b in receiver.accepted} == {"/cameras/gate"}


def hub_online(root, camera: str) -> bool:
    """Say whether the running hub last stored the camera as online."""
    with sqlite3.connect(f"file:{root / 'porchlight.db'}?mode=ro", uri=True) as db:
        row = db.execute("select state from camera_state where camera = ?", [camera]).fetchone()
    return row is not None and row[0] == "online"
