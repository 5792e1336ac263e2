"""Crash safety: a kill -9 at any moment of an import loses at most the segment being written."""

from __future__ import annotations

import io
import random
import signal
import sqlite3
import subprocess
import sys
import time

import av
import pytest

from hub.service import Hub
from hub.vault.repair import check_vault
from plugins.cameras.scene import write_clip


def _committed(root) -> dict[str, str]:
    """Return {segment id: SHA-256} of every segment the index holds, read before any repair."""
    with sqlite3.connect(f"file:{root / 'porchlight.db'}?mode=ro", uri=True) as db:
        return dict(db.execute("select id, sha256 from segments"))


def _verify_everything(root, identity, committed: dict[str, str]) -> int:
    """Check that every committed segment survived and plays, and that nothing else is there."""
    hub = Hub(root)
    try:
        report = check_vault(hub.vault, verify_hashes=True)
        segments = hub.vault.segments()
        # A repair that deletes footage would also leave disk and index agreeing: check that
        # every segment committed before the kill is still there, with the bytes it had.
        survived = {s.id: s.sha256 for s in segments}
        lost = {id_ for id_, sha in committed.items() if survived.get(id_) != sha}
        assert not lost, f"{len(lost)} of {len(committed)} committed segments lost: {sorted(lost)}"
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


# Thirty: every round re-reads all footage committed so far, so the cost grows with the square
# of the rounds; thirty kills land in every stage of an import many times over.
KILLS = 30


def test_kill_nine_during_import_thirty_times(hub_dir, household_identity, tmp_path):
    clip = tmp_path / "long.mp4"
    write_clip(clip, seconds=120.0, fps=10, size=(320, 180))
    rng = random.Random(20261128)
    repaired = completed = grew = 0
    committed: dict[str, str] = {}

    def day(round_: int) -> str:
        return f"2026-11-{1 + round_ % 28:02d}"

    def start_import(round_: int) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "footage", "import", "--data", str(hub_dir),
             "--camera", f"cam{round_ % 3}", "--start", f"{day(round_)}T10:00:00Z", str(clip)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def kill_after_sealing(proc: subprocess.Popen, round_: int, files: int) -> None:
        """Kill the import once its folder holds `files` segment files (so files-1 are indexed)."""
        folder = hub_dir / "vault" / f"cam{round_ % 3}" / day(round_)
        while proc.poll() is None and len(list(folder.glob("*.age"))) < files:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)

    # How long one whole import takes here, so the kills spread over its whole life.
    began = time.monotonic()
    assert start_import(99).wait() == 0
    whole = time.monotonic() - began
    committed.update(_committed(hub_dir))
    assert len(committed) == 12, "the first whole import did not commit its 12 segments"
    for round_ in range(KILLS):
        proc = start_import(round_)
        if round_ % 2:
            # Sealing takes a small part of an import's life: half the kills land inside it,
            # after a random number of segments were committed, so the repair has footage to keep.
            kill_after_sealing(proc, round_, rng.randint(2, 12))
        else:
            time.sleep(rng.uniform(0.05, 0.95) * whole)
            proc.send_signal(signal.SIGKILL)
        if proc.wait() == 0:
            completed += 1
        before = len(committed)
        committed.update(_committed(hub_dir))
        grew += len(committed) > before
        repaired += _verify_everything(hub_dir, household_identity, committed)
    print(f"\ncrash loop: {KILLS} kills, {completed} imports finished first, {repaired} repairs, "
          f"{len(committed)} committed segments all kept, {grew} rounds committed new ones")
    assert completed < KILLS // 2  # most kills must land mid-import, or the test proves nothing
    assert grew >= KILLS // 2  # every kill inside sealing left committed segments the repair had to keep


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


def test_a_check_beside_a_sealing_recorder_leaves_its_segments_alone(hub, hub_dir):
    """The running hub checks its vault while cameras seal (its own pass, or the owner's check
    from the web UI): a segment being written is not a crash's leftover."""
    import os
    import threading
    from datetime import UTC, datetime, timedelta

    from hub.vault.media import SEGMENT_TYPE

    sealed: list = []
    failures: list[BaseException] = []
    start = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)

    def record() -> None:
        try:
            for i in range(150):
                at = start + timedelta(seconds=10 * i)
                sealed.append(hub.vault.seal("porch", at, at + timedelta(seconds=10),
                                             SEGMENT_TYPE, os.urandom(64 * 1024)))
        except BaseException as err:  # handed to the test's thread
            failures.append(err)

    recorder = threading.Thread(target=record)
    recorder.start()
    repairs = []
    checks = 0
    while recorder.is_alive() or checks == 0:
        repairs += check_vault(hub.vault, verify_hashes=False).repairs
        checks += 1
    recorder.join()
    assert not failures, failures
    assert checks > 10
    assert [(r.action, r.path) for r in repairs] == []
    assert sorted(s.id for s in hub.vault.segments(status="ok")) == sorted(s.id for s in sealed)
    assert not (hub_dir / "quarantine").exists()
