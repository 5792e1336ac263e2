"""A third-party notifier, installed with pip as a package of its own and loaded by a real
`porchlight run` through its `porchlight` entry point; the same code as docs/plugins.md shows."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(__file__).parent / "outside_notifier"


def test_the_docs_show_the_package_that_is_tested():
    docs = (ROOT / "docs" / "plugins.md").read_text()
    code = re.search(r"```python\n(# porchlight_notify_file/__init__\.py.*?)```", docs, re.S)
    assert code.group(1) == (PACKAGE / "porchlight_notify_file" / "__init__.py").read_text()
    assert 'notify_file = "porchlight_notify_file"' in docs
    assert 'notify_file = "porchlight_notify_file"' in (PACKAGE / "pyproject.toml").read_text()


def test_an_installed_notifier_package_is_loaded_through_its_entry_point(hub_dir, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(PACKAGE, source)
    site = tmp_path / "site"
    # Offline: the virtualenv's own setuptools builds it.
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(source)],
                   check=True, capture_output=True, timeout=120)
    assert (site / "porchlight_notify_file-1.0.dist-info" / "entry_points.txt").exists()
    config = hub_dir / "config.toml"
    # Any real disk has less than 99.99% free: the first upkeep pass notifies "disk".
    config.write_text(config.read_text() + "\n[notify]\ndisk_free_percent = 99.99\n"
                      '\n[[notifiers]]\ntype = "file"\nname = "journal"\n'
                      'path = "notifications.jsonl"\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    log = (tmp_path / "hub.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "--http", "--data",
                             str(hub_dir), "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    journal = hub_dir / "notifications.jsonl"
    try:
        assert "listening on" in proc.stdout.readline()
        deadline = time.monotonic() + 60
        while not journal.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        log.close()
    [line] = journal.read_text().splitlines()
    assert json.loads(line) == {"trigger": "disk", "title": "Disk nearly full",
                                "url": "/settings"}
