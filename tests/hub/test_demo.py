"""`porchlight demo` runs start to finish on embedded defaults, as the README promises."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "hub.cli", "demo", "--keep", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "sealed 3 segments into the vault with the public key only" in out
    assert "wrote porch-export.mp4: 2 segments, 300 frames" in out
    assert "no plaintext footage on disk" in out
    assert (tmp_path / "porch-export.mp4").stat().st_size > 0
    assert not (tmp_path / "porch-camera.mp4").exists()  # the generated input was removed


def test_a_bad_config_stops_every_command(hub_dir, cli):
    config = hub_dir / "config.toml"
    config.write_text(config.read_text().replace("[retention]", "[retention]\nkeep_forever = true"))
    before = sorted(p.name for p in hub_dir.rglob("*"))
    code, out, err = cli("footage", "list", "--data", hub_dir)
    assert (code, out) == (1, "")
    assert err == "porchlight: error: config.toml: retention.keep_forever: unknown key\n"
    assert sorted(p.name for p in hub_dir.rglob("*")) == before
