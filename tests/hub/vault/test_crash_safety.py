"""Crash safety: a kill -9 at any moment of an import loses at most the segment being written."""

from __future__ import annotations

import io
import random
import signal
import subprocess
import sys
import time

import av
import pytest

from hub.service import Hub
from hub.vault.repair import check_vault
from plugins.cameras.scene import write_clip


def _verify_everything(root, identity) -> int:
    """Check that every indexed segment decrypts, matches its hash and plays; nothing else is there."""
    hub = Hub(root)
    try:
        report = check_vault(hub.vault, verify_hashes=True)
        segments = hub.vault.segments()
        for segment in segments:
            assert segment.status == "ok", segment
            data = hub.vault.read(segment, identity)  # checks size, SHA-256 and age's MACs
            with av.open(io.BytesIO(data)) as container:
                assert sum(1 for _ in container.demux(video=0) if _.size) > 0
        indexed = {s.path for s in segments}
        on_disk = {p.relative_to(root).as_posix() for p in (root / "vault").rglob("*")
                   if p.is_file()}
        assert on_disk == indexed
        assert not list((root / "vault" / ".tmp").glob("*"))
        return len([r for r in report.repairs if r.action in ("reindexed", "removed-temp")])
    finally:
        hub.close()


def test_kill_nine_during_import_fifty_times(hub_dir, household_identity, tmp_path):
    clip = tmp_path / "long.mp4"
    write_clip(clip, seconds=120.0, fps=10, size=(320, 180))
    rng = random.Random(20261128)
    repaired = completed = 0

    def start_import(round_: int) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "footage", "import", "--data", str(hub_dir),
             "--camera", f"cam{round_ % 3}", "--start", f"2026-11-{1 + round_ % 28:02d}T10:00:00Z",
             str(clip)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    # How long one whole import takes here, so the kills spread over its whole life.
    began = time.monotonic()
    assert start_import(99).wait() == 0
    whole = time.monotonic() - began
    for round_ in range(50):
        proc = start_import(round_)
        time.sleep(rng.uniform(0.05, 0.95) * whole)
        proc.send_signal(signal.SIGKILL)
        if proc.wait() == 0:
            completed += 1
        repaired += _verify_everything(hub_dir, household_identity)
    print(f"\ncrash loop: 50 kills, {completed} imports finished first, {repaired} repairs")
    assert completed < 25  # most kills must land mid-import, or the test proves nothing


@pytest.fixture
def hub(hub_dir):
    hub = Hub(hub_dir)
    yield hub
    hub.close()


def test_repairs_are_reported_and_nothing_is_deleted_silently(hub, hub_dir, clip25, cli):
    from hub.timeutil import parse_time
    from hub.vault.footage import import_files

    segments = import_files(hub, "porch", parse_time("2026-11-20T14:00:00Z"), [clip25],
                            progress=False)
    (hub_dir / "vault" / ".tmp").mkdir(exist_ok=True)
    (hub_dir / "vault" / ".tmp" / "deadbeef.tmp").write_bytes(b"half a segment")
    (hub_dir / segments[0].path).unlink()
    stray = hub_dir / "vault" / "porch" / "holiday.mp4"
    stray.write_bytes(b"\x00\x00\x00\x18ftypmp42 plaintext someone copied here")
    code, out, _ = cli("footage", "check", "--data", hub_dir)
    assert code == 1
    assert out.splitlines() == [
        "checked 3 segments: 3 findings",
        "  removed-temp: vault/.tmp/deadbeef.tmp (an unfinished write of 14 bytes (never indexed))",
        f"  flagged-missing: {segments[0].path} (segment {segments[0].id}: the file is missing)",
        "  quarantined: vault/porch/holiday.mp4 (not a vault segment this hub can index; "
        "moved to quarantine/vault/porch/holiday.mp4)",
    ]
    assert (hub_dir / "quarantine" / "vault" / "porch" / "holiday.mp4").exists()
    rows = [r["action"] for r in hub.db["repairs"].rows]
    assert rows == ["removed-temp", "flagged-missing", "quarantined"]
    assert [s.status for s in hub.vault.segments()] == ["missing", "ok", "ok"]
    # A second check reports what is still wrong but records nothing new.
    code, out, _ = cli("footage", "check", "--data", hub_dir, "--json")
    assert code == 1
    assert '"action": "flagged-missing"' in out
    assert hub.db["repairs"].count == 3
