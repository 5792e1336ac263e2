"""Home Assistant over MQTT, against a real mosquitto and a real `porchlight run` hub.

Discovery payloads carry what Home Assistant requires of each component; motion, camera state
and pending requests change the retained states; a hub killed with SIGKILL turns `offline` by
its last will; switches act only when the owner enabled them.
"""

from __future__ import annotations

import json
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from hub.cameras.admin import remove_camera
from hub.datadir import DataDir
from hub.household import hub_key
from hub.web.tls import make_self_signed
from plugins.integrations.homeassistant import node_id_for
from tests.plugins.mqtt_peer import Mosquitto, Subscriber, free_port

HUB_DEADLINE_S = 60.0
MOTION_DEADLINE_S = 120.0  # the first walker is over about 11 s after the camera starts
SEGMENT_S = 1.0
# A change to config.toml reaches the recorders within a second (hub/cameras/service.py).
APPLY = timedelta(seconds=1 + 2 * SEGMENT_S)


@pytest.fixture
def broker(tmp_path):
    broker = Mosquitto(tmp_path)
    yield broker
    broker.stop()


@pytest.fixture
def subscriber(broker):
    subscriber = Subscriber(broker.port)
    yield subscriber
    subscriber.close()


def _configure(root, port: int, *, switches: bool, scenario: str | None) -> str:
    """Add a synthetic camera and an [mqtt] section; return the hub's topic base."""
    camera = ('[[cameras]]\nname = "yard"\ntype = "synthetic"\nfps = 10\nwidth = 320\n'
              'height = 180\n')
    if scenario:
        camera += f'scenario = "{scenario}"\nloop_seconds = 20.0\n'
    text = (root / "config.toml").read_text().replace("segment_seconds = 10.0",
                                                       f"segment_seconds = {SEGMENT_S}")
    text += (f'\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
             f'switches = {"true" if switches else "false"}\n\n' + camera)
    (root / "config.toml").write_text(text)
    return f"porchlight/{node_id_for(hub_key(DataDir(root)).kid)}"


def _start(root) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "run", "--data", str(root), "--listen",
         "127.0.0.1:0", "--http"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], HUB_DEADLINE_S)
    if not ready:
        proc.kill()
        _stop(proc)
        raise AssertionError("the hub did not start serving")
    assert "listening on" in proc.stdout.readline()
    return proc


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> str:
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=60)
    proc.stdout.close()
    log = proc.stderr.read()
    proc.stderr.close()
    return log


def _segments(root) -> list[tuple[datetime, datetime]]:
    with sqlite3.connect(DataDir(root).database) as db:
        rows = db.execute("select start, \"end\" from segments where camera = 'yard' and "
                          "media_type = 'video/mp4' order by start").fetchall()
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in rows]


def _wait_segments(root, count: int, after: datetime, what: str) -> None:
    deadline = time.monotonic() + HUB_DEADLINE_S
    while len([s for s in _segments(root) if s[0] > after]) < count:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _config(sub: Subscriber, prefix: str, component: str, object_id: str, node: str) -> dict:
    topic = f"{prefix}/{component}/{node}/{object_id}/config"
    sub.wait_for(lambda m: m.get(topic), HUB_DEADLINE_S, topic)
    return json.loads(sub.latest(topic))


def _check_common(config: dict, base: str, node: str) -> None:
    """What Home Assistant needs of every entity tied to a device: unique_id, device, availability."""
    assert config["unique_id"].startswith(node + "_")
    assert config["device"]["identifiers"] == [node]
    assert config["device"]["name"] == "test-hub"
    assert config["device"]["manufacturer"] == "Porchlight"
    assert config["availability"] == [{"topic": f"{base}/availability",
                                       "payload_available": "online",
                                       "payload_not_available": "offline"}]
    assert config["name"]


def _pending_request(root) -> None:
    with sqlite3.connect(DataDir(root).database) as db:
        db.execute("insert into requests (id, status, received) values (?, 'pending', ?)",
                   [uuid.uuid4().hex, datetime.now(UTC).isoformat()])


def test_discovery_states_and_last_will_with_switches_off(hub_dir, broker, subscriber):
    base = _configure(hub_dir, broker.port, switches=False, scenario="walking_figure")
    node = base.split("/")[1]
    hub = _start(hub_dir)
    try:
        subscriber.wait_for(lambda m: m.get(f"{base}/availability", [b""])[-1] == b"online",
                            HUB_DEADLINE_S, "availability online")

        # Discovery: each component with the topic Home Assistant requires of it.
        motion = _config(subscriber, "homeassistant", "binary_sensor", "yard_motion", node)
        assert motion["state_topic"] == f"{base}/camera/yard/motion"
        assert motion["device_class"] == "motion"
        assert (motion["payload_on"], motion["payload_off"]) == ("ON", "OFF")
        state = _config(subscriber, "homeassistant", "sensor", "yard_state", node)
        assert state["state_topic"] == f"{base}/camera/yard/state"
        assert state["device_class"] == "enum" and "online" in state["options"]
        camera = _config(subscriber, "homeassistant", "camera", "yard_snapshot", node)
        assert camera["topic"] == f"{base}/camera/yard/snapshot"
        assert "image_encoding" not in camera  # raw JPEG bytes
        pending = _config(subscriber, "homeassistant", "sensor", "pending_requests", node)
        assert pending["state_topic"] == f"{base}/requests/pending"
        configs = [motion, state, camera, pending]
        for config in configs:
            _check_common(config, base, node)
        assert len({c["unique_id"] for c in configs}) == 4
        # Home Assistant restarted (its birth message): everything is announced again.
        subscriber.publish("homeassistant/status", b"online")
        subscriber.wait_for(
            lambda m: len(m[f"homeassistant/binary_sensor/{node}/yard_motion/config"]) == 2,
            HUB_DEADLINE_S, "discovery again after Home Assistant's birth message")
        # Without switches, no switch entity (an empty config removes any left from before),
        # at each announcement: once at the start, once more after the birth message, which
        # may or may not have arrived by now (seen both ways in CI).
        for switch in ("recording", "analysis"):
            topic = f"homeassistant/switch/{node}/yard_{switch}/config"
            subscriber.wait_for(lambda m, t=topic: m.get(t), HUB_DEADLINE_S, topic)
            assert set(subscriber.history(topic)) == {b""}
            assert len(subscriber.history(topic)) <= 2

        # The camera's state, and motion ON while the walker crosses, then OFF.
        subscriber.wait_for(lambda m: m.get(f"{base}/camera/yard/state", [b""])[-1] == b"online",
                            HUB_DEADLINE_S, "camera state online")
        motion_topic = f"{base}/camera/yard/motion"
        subscriber.wait_for(lambda m: b"ON" in m.get(motion_topic, []), MOTION_DEADLINE_S,
                            "motion ON")
        subscriber.wait_for(lambda m: m[motion_topic][-1] == b"OFF" and
                            m[motion_topic].index(b"ON") < len(m[motion_topic]) - 1,
                            MOTION_DEADLINE_S, "motion OFF after ON")
        assert subscriber.history(motion_topic)[0] == b"OFF"
        # The motion event's snapshot, as JPEG bytes, on the camera entity's topic.
        snapshot = subscriber.wait_for(
            lambda m: m.get(f"{base}/camera/yard/snapshot", [None])[-1], HUB_DEADLINE_S,
            "a snapshot")
        assert snapshot[:3] == b"\xff\xd8\xff"

        # Pending agency requests: 0, then 1 once one waits in the inbox.
        pending_topic = f"{base}/requests/pending"
        subscriber.wait_for(lambda m: m.get(pending_topic), HUB_DEADLINE_S, "pending count")
        assert subscriber.latest(pending_topic) == b"0"
        _pending_request(hub_dir)
        subscriber.wait_for(lambda m: m[pending_topic][-1] == b"1", HUB_DEADLINE_S,
                            "pending count 1")

        # Switches are off: a command on the topic a switch would use changes nothing.
        config_before = (hub_dir / "config.toml").read_bytes()
        sent = datetime.now(UTC)
        subscriber.publish(f"{base}/camera/yard/recording/set", b"OFF")
        _wait_segments(hub_dir, 3, sent, "segments after the ignored command")
        assert (hub_dir / "config.toml").read_bytes() == config_before
        assert f"{base}/camera/yard/recording" not in subscriber.messages

        # Killed, the hub cannot say goodbye: the broker publishes its last will.
        hub.send_signal(signal.SIGKILL)
        subscriber.wait_for(lambda m: m[f"{base}/availability"][-1] == b"offline",
                            HUB_DEADLINE_S, "availability offline (the last will)")
    finally:
        log = _stop(hub, signal.SIGKILL)
    assert "Home Assistant turned" not in log


def test_switches_turn_recording_off_and_on_when_enabled(hub_dir, broker, subscriber):
    base = _configure(hub_dir, broker.port, switches=True, scenario=None)
    node = base.split("/")[1]
    hub = LoggedHub(hub_dir)
    try:
        recording = _config(subscriber, "homeassistant", "switch", "yard_recording", node)
        _check_common(recording, base, node)
        assert recording["command_topic"] == f"{base}/camera/yard/recording/set"
        assert recording["state_topic"] == f"{base}/camera/yard/recording"
        analysis = _config(subscriber, "homeassistant", "switch", "yard_analysis", node)
        assert analysis["command_topic"] == f"{base}/camera/yard/analysis/set"
        state_topic = f"{base}/camera/yard/recording"
        subscriber.wait_for(lambda m: m.get(state_topic, [b""])[-1] == b"ON", HUB_DEADLINE_S,
                            "recording ON")
        _wait_segments(hub_dir, 2, datetime.now(UTC), "segments while recording")

        # Outside input first: a payload that is neither ON nor OFF, a camera that does not
        # exist. Both are ignored (commands are handled in order, so before the OFF below).
        config_before = (hub_dir / "config.toml").read_text()
        subscriber.publish(f"{base}/camera/yard/recording/set", b"MAYBE")
        subscriber.publish(f"{base}/camera/ghost/recording/set", b"OFF")
        subscriber.publish(f"{base}/camera/yard/recording/set", b"OFF")
        subscriber.wait_for(lambda m: m[state_topic][-1] == b"OFF", HUB_DEADLINE_S,
                            "recording OFF")
        after = (hub_dir / "config.toml").read_text().splitlines()
        assert set(after) ^ set(config_before.splitlines()) == {"recording = false"}
        off = datetime.now(UTC)
        assert "recording = false" in (hub_dir / "config.toml").read_text()
        # Absence needs a stretch of time: eight segments' worth, which recording would fill.
        time.sleep(8 * SEGMENT_S)
        subscriber.publish(f"{base}/camera/yard/recording/set", b"ON")
        subscriber.wait_for(lambda m: m[state_topic][-1] == b"ON", HUB_DEADLINE_S,
                            "recording ON again")
        on = datetime.now(UTC)
        _wait_segments(hub_dir, 1, on, "segments once recording is back on")
        assert "recording = false" not in (hub_dir / "config.toml").read_text()
        # Recording went off and on in place: the camera was never restarted.
        hub.wait_for_log("camera yard: recording on")
        assert sum("camera yard: started" in line for line in hub.lines) == 1

        # Analysis off restarts the camera without its detector.
        subscriber.publish(f"{base}/camera/yard/analysis/set", b"OFF")
        subscriber.wait_for(lambda m: m.get(f"{base}/camera/yard/analysis", [b""])[-1] == b"OFF",
                            HUB_DEADLINE_S, "analysis OFF")
        hub.wait_for_log("camera yard: started (synthetic, continuous, no analysis)")
        assert "analysis = false" in (hub_dir / "config.toml").read_text()

        # A camera removed from config.toml leaves Home Assistant: its entities are cleared.
        remove_camera(DataDir(hub_dir), "yard")
        for component, object_id in (("binary_sensor", "yard_motion"), ("sensor", "yard_state"),
                                     ("camera", "yard_snapshot"), ("switch", "yard_recording"),
                                     ("switch", "yard_analysis")):
            topic = f"homeassistant/{component}/{node}/{object_id}/config"
            subscriber.wait_for(lambda m, t=topic: m[t][-1] == b"", HUB_DEADLINE_S,
                                f"{topic} cleared")
    finally:
        log = hub.stop()

    # Nothing was kept while recording was off; the camera ran all along (no restart).
    # Allowing for the second config.toml takes to apply, and the segments open then.
    kept_while_off = [s for s in _segments(hub_dir) if off + APPLY < s[0] < on - APPLY]
    assert kept_while_off == []
    assert "Home Assistant turned recording off on camera yard" in log
    assert (f"mqtt: ignored a command on {base}/camera/yard/recording/set (expected ON or OFF "
            "for a camera's recording or analysis)") in log
    assert f"mqtt: ignored a command on {base}/camera/ghost/recording/set" in log
    assert "ghost" not in (hub_dir / "config.toml").read_text()
    assert "camera yard: recording off (segments are not kept)" in log
    # Stopped cleanly, the hub said `offline` itself.
    assert subscriber.latest(f"{base}/availability") == b"offline"


class LoggedHub:
    """A `porchlight run` whose log is read as it runs."""

    def __init__(self, root) -> None:
        self.proc = _start(root)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.drainer = threading.Thread(target=self._drain, name="hub-log", daemon=True)
        self.drainer.start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for_log(self, text: str, count: int = 1) -> None:
        with self.cond:
            found = self.cond.wait_for(
                lambda: sum(text in line for line in self.lines) >= count, HUB_DEADLINE_S)
        assert found, f"no {text!r} in the hub's log: {''.join(self.lines)[-2000:]}"

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.drainer.join(10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return "".join(self.lines)


def test_a_wrong_password_and_a_broker_restart_are_retried_without_leaking_secrets(
        hub_dir, tmp_path):
    users = {"porchlight": "hub-secret-4711", "ha": "ha-secret-0815"}
    first = Mosquitto(tmp_path, users=users)
    port = first.port
    secret = hub_dir / "secrets" / "mqtt.password"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text("wrong-secret-1234\n")
    base = _configure(hub_dir, port, switches=False, scenario=None)
    config = hub_dir / "config.toml"
    config.write_text(config.read_text().replace(
        "[mqtt]\n", '[mqtt]\nusername = "porchlight"\npassword = { file = "secrets/mqtt.password" }\n'))
    subscriber = Subscriber(port, auth=("ha", users["ha"]))
    hub = LoggedHub(hub_dir)
    second = None
    try:
        hub.wait_for_log(f"mqtt: broker 127.0.0.1:{port}: ")
        assert subscriber.latest(f"{base}/availability") is None
        # The owner fixes the password file: the next attempt reads it, no restart needed.
        secret.write_text(users["porchlight"] + "\n")
        subscriber.wait_for(lambda m: m.get(f"{base}/availability", [b""])[-1] == b"online",
                            HUB_DEADLINE_S, "online with the right password")

        # The broker restarts and forgets everything (no persistence): the hub connects again
        # and announces itself afresh.
        subscriber.close()
        first.stop()
        hub.wait_for_log(f"mqtt: broker 127.0.0.1:{port}: ", count=2)
        second = Mosquitto(tmp_path, port=port, users=users)
        subscriber = Subscriber(port, auth=("ha", users["ha"]))
        subscriber.wait_for(lambda m: m.get(f"{base}/availability", [b""])[-1] == b"online",
                            HUB_DEADLINE_S, "online after the broker restarted")
        node = base.split("/")[1]
        _check_common(_config(subscriber, "homeassistant", "binary_sensor", "yard_motion", node),
                      base, node)
        subscriber.wait_for(lambda m: m.get(f"{base}/camera/yard/state"), HUB_DEADLINE_S,
                            "the camera's state again")
    finally:
        log = hub.stop()
        subscriber.close()
        first.stop()
        if second is not None:
            second.stop()

    # One line per failure streak (the wrong password, the restart), and no secret in the log.
    assert log.count("retrying with backoff") == 2, log
    assert f"mqtt: connected to 127.0.0.1:{port} again" in log
    for value in (*users.values(), "wrong-secret-1234"):
        assert value not in log


def test_a_broker_that_is_down_never_holds_the_hub_back(hub_dir):
    port = free_port()  # nothing listens there
    _configure(hub_dir, port, switches=False, scenario=None)
    hub = LoggedHub(hub_dir)  # `listening on` printed: the web UI serves without the broker
    try:
        hub.wait_for_log(f"mqtt: broker 127.0.0.1:{port}: ")
        _wait_segments(hub_dir, 2, datetime.now(UTC), "segments with the broker down")
    finally:
        log = hub.stop()
    assert hub.proc.returncode == 0
    assert log.count("retrying with backoff") == 1
    # Within the hub's shutdown timeout: nothing waits for a broker that is not there.
    assert "services did not stop" not in log


def test_a_tls_broker_is_reached_only_with_its_certificate(hub_dir, tmp_path):
    # The broker's self-signed certificate (it names 127.0.0.1), and another one that is not it.
    cert, key = tmp_path / "broker.pem", tmp_path / "broker.key"
    make_self_signed(cert, key, "broker")
    make_self_signed(tmp_path / "other.pem", tmp_path / "other.key", "other")
    broker = Mosquitto(tmp_path, tls=(cert, key))
    ca_file = hub_dir / "secrets" / "mqtt-ca.pem"
    ca_file.parent.mkdir(exist_ok=True)
    ca_file.write_bytes((tmp_path / "other.pem").read_bytes())
    base = _configure(hub_dir, broker.port, switches=False, scenario=None)
    config = hub_dir / "config.toml"
    config.write_text(config.read_text().replace(
        "[mqtt]\n", '[mqtt]\ntls = true\nca_file = "secrets/mqtt-ca.pem"\n'))
    subscriber = Subscriber(broker.port, ca=cert)
    hub = LoggedHub(hub_dir)
    try:
        # The wrong certificate: refused, nothing published, retried.
        hub.wait_for_log(f"mqtt: broker 127.0.0.1:{broker.port}: ")
        assert "certificate verify failed" in "".join(hub.lines)
        assert subscriber.latest(f"{base}/availability") is None
        # The owner puts the broker's certificate in place: the next attempt reads it.
        ca_file.write_bytes(cert.read_bytes())
        subscriber.wait_for(lambda m: m.get(f"{base}/availability", [b""])[-1] == b"online",
                            HUB_DEADLINE_S, "online over TLS")
        node = base.split("/")[1]
        _check_common(_config(subscriber, "homeassistant", "binary_sensor", "yard_motion", node),
                      base, node)
    finally:
        log = hub.stop()
        subscriber.close()
        broker.stop()
    assert log.count("retrying with backoff") == 1, log
