"""config.toml edited at once by two processes and two threads (as a CLI command, the web UI and
the MQTT bridge may): no change is lost, and the file stays one the hub accepts."""

from __future__ import annotations

import subprocess
import sys
import threading

from hub.cameras.admin import add_camera
from hub.config import load_config
from hub.datadir import DataDir
from hub.vault.settings import set_retention

EACH = 15
ADD = """
import sys
from hub.cameras.admin import add_camera
from hub.datadir import DataDir
data, prefix, each = DataDir(sys.argv[1]), sys.argv[2], int(sys.argv[3])
sys.stdin.readline()  # start together
for i in range(each):
    add_camera(data, f"{prefix}{i}", synthetic=True)
"""


def test_simultaneous_edits_lose_no_change(hub_dir):
    data = DataDir(hub_dir)
    processes = [subprocess.Popen([sys.executable, "-c", ADD, str(hub_dir), prefix, str(EACH)],
                                  stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for prefix in ("cli", "web")]
    errors: list[BaseException] = []

    def edit(prefix: str) -> None:
        try:
            for i in range(EACH):
                add_camera(data, f"{prefix}{i}", synthetic=True)
                set_retention(data, {"max_age_days": float(i + 1)})
        except BaseException as err:  # noqa: BLE001 (reported below)
            errors.append(err)

    threads = [threading.Thread(target=edit, args=(prefix,)) for prefix in ("mqtt", "ui")]
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stderr.read()
    assert errors == []
    names = {camera.name for camera in load_config(hub_dir).cameras}
    assert names == {f"{prefix}{i}" for prefix in ("cli", "web", "mqtt", "ui")
                     for i in range(EACH)}
    assert load_config(hub_dir).retention.max_age_days == float(EACH)
    assert not [p.name for p in hub_dir.iterdir() if p.name.endswith(".tmp")]
