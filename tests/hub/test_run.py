"""`porchlight run`: health on HTTP, retention on a timer, a clean stop on SIGTERM and SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest


def _start(root, *extra) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "run", "--http", "--data", str(root), "--listen", "127.0.0.1:0",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    assert "listening on http://127.0.0.1:" in line, proc.stderr.read() if proc.poll() else line
    return proc, int(line.rsplit(":", 1)[1])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_health_and_stops_cleanly(hub_dir, sig):
    proc, port = _start(hub_dir)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as reply:
            assert json.load(reply) == {"status": "ok", "hub": "test-hub", "down": [],
                                        "cameras": {}}
        proc.send_signal(sig)
        # The promise is 5 s; the wait allows for a loaded CI machine.
        assert proc.wait(timeout=30) == 0
        err = proc.stderr.read()
        assert "hub test-hub stopping" in err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_applies_retention_periodically(hub_dir, clip25, cli):
    config = hub_dir / "config.toml"
    text = config.read_text().replace("max_age_days = 30.0", "max_age_days = 7.0")
    config.write_text(text.replace("interval_minutes = 60.0", "interval_minutes = 0.005"))
    assert cli("footage", "import", "--data", hub_dir, "--camera", "porch",
               "--start", "2020-01-01T00:00:00Z", clip25)[0] == 0
    assert cli("footage", "hold", "--data", hub_dir, "--camera", "porch",
               "--from", "2020-01-01T00:00:00Z", "--to", "2020-01-01T00:00:05Z",
               "--reason", "insurance")[0] == 0
    proc, _ = _start(hub_dir)
    try:
        for _ in range(200):
            code, out, _ = cli("footage", "list", "--data", hub_dir, "--json")
            if len(json.loads(out)) == 1:
                break
            time.sleep(0.1)
        segments = json.loads(out)
        assert [s["start"] for s in segments] == ["2020-01-01T00:00:00.000000Z"]  # the held one
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert "retention deleted 2 segments" in proc.stderr.read()


def test_prune_on_demand(hub_dir, clip25, cli):
    assert cli("footage", "import", "--data", hub_dir, "--camera", "porch",
               "--start", "2020-01-01T00:00:00Z", clip25)[0] == 0
    code, out, _ = cli("footage", "prune", "--data", hub_dir, "--dry-run")
    assert code == 0
    assert out.splitlines()[0].startswith("would delete 3 segments (")
    assert len(json.loads(cli("footage", "list", "--data", hub_dir, "--json")[1])) == 3
    code, out, _ = cli("footage", "prune", "--data", hub_dir, "--json")
    assert json.loads(out)["dry_run"] is False
    assert len(json.loads(out)["delete"]) == 3
    assert json.loads(cli("footage", "list", "--data", hub_dir, "--json")[1]) == []
    assert not [p for p in (hub_dir / "vault").rglob("*.age")]
