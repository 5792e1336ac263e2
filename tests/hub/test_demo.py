"""`porchlight demo` runs start to finish on embedded defaults, as the README promises."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_a_whole_neighbourhood(tmp_path):
    done = subprocess.run([sys.executable, "-m", "hub.cli", "demo", "--keep", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "segments with its public key only" in out
    assert "no plaintext footage anywhere" in out
    assert "maple-14 received it (verified neighbourhood hub)" in out
    assert "oak-3, 5 km away, received 0 alerts" in out
    assert "maple-12: pending" in out and "maple-14: pending" in out
    assert "oak-3: never saw it (outside the circle)" in out
    assert "agency status: asked 2, approved 1, denied 1, pending 0" in out
    assert "since 2025-03-01: 1 requests, 1 approvals, 1 denials" in out
    assert "all consistent" in out
    assert (tmp_path / "evidence" / "manifest.json").exists()


def test_a_bad_config_stops_every_command(hub_dir, cli):
    config = hub_dir / "config.toml"
    config.write_text(config.read_text().replace("[retention]", "[retention]\nkeep_forever = true"))
    before = sorted(p.name for p in hub_dir.rglob("*"))
    code, out, err = cli("footage", "list", "--data", hub_dir)
    assert (code, out) == (1, "")
    assert err == "porchlight: error: config.toml: retention.keep_forever: unknown key\n"
    assert sorted(p.name for p in hub_dir.rglob("*")) == before
