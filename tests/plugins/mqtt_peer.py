"""A real mosquitto broker on 127.0.0.1 and a subscriber that keeps every message it hears."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path

import paho.mqtt.client as mqtt

START_DEADLINE_S = 20.0


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mosquitto:
    """Debian's mosquitto, listening on 127.0.0.1 only, stopped by its process id."""

    def __init__(self, workdir: Path, port: int | None = None,
                 users: dict[str, str] | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        """tls: (certificate, key) PEM files; the listener then speaks TLS only."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = port or free_port()
        self.config = workdir / "mosquitto.conf"
        access = "allow_anonymous true\n"
        if users:
            passwords = workdir / "mosquitto.passwd"
            passwords.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password],
                               check=True, capture_output=True)
            access = f"allow_anonymous false\npassword_file {passwords}\n"
        # Run as whoever runs the tests: started by root, mosquitto would switch to its own
        # user, who cannot read the test's private temporary folder.
        listener = f"listener {self.port} 127.0.0.1\n"
        if tls is not None:
            listener += f"certfile {tls[0]}\nkeyfile {tls[1]}\n"
        self.config.write_text(f"user {getpass.getuser()}\n{listener}{access}"
                               "persistence false\nlog_dest stderr\nlog_type error\n")
        self.proc = subprocess.Popen([binary, "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the broker and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()


class Subscriber:
    """A paho-mqtt client subscribed to everything; messages kept per topic, in order."""

    def __init__(self, port: int, topic: str = "#", auth: tuple[str, str] | None = None,
                 ca: Path | None = None) -> None:
        self.messages: dict[str, list[bytes]] = defaultdict(list)
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-subscriber")
        if auth is not None:
            self.client.username_pw_set(*auth)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))  # checks the broker's certificate and name
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert subscribed.wait(10), "the test subscriber could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self.cond:
            self.messages[message.topic].append(bytes(message.payload))
            self.cond.notify_all()

    def wait_for(self, check, timeout: float, what: str):
        """Wait until check(messages) returns something true; return it."""
        with self.cond:
            result = self.cond.wait_for(lambda: check(self.messages), timeout)
        assert result, f"timed out waiting for {what}; heard: {self.summary()}"
        return result

    def latest(self, topic: str) -> bytes | None:
        """Return the last payload heard on a topic."""
        with self.cond:
            values = self.messages.get(topic)
            return values[-1] if values else None

    def history(self, topic: str) -> list[bytes]:
        """Return every payload heard on a topic, in order."""
        with self.cond:
            return list(self.messages.get(topic, []))

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish a message (QoS 1) and wait until the broker has it."""
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def summary(self) -> str:
        with self.cond:
            return ", ".join(f"{t}={v[-1][:40]!r}" for t, v in sorted(self.messages.items()))

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
