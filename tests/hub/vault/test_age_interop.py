"""The `age` CLI (Debian's age) and the vault read each other's files: nothing is locked in."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pexpect
import pytest

from hub.service import Hub
from hub.timeutil import parse_time
from hub.vault.footage import import_files
from hub.vault.repair import check_vault

pytestmark = pytest.mark.skipif(shutil.which("age") is None,
                                reason="the age CLI is not installed (scripts/setup --test)")
ROOT = Path(__file__).resolve().parents[3]


def test_age_cli_decrypts_a_vault_file_with_the_passphrase_sealed_identity(
        hub_dir, clip25, passphrase, tmp_path):
    """The documented recovery: `age -d -i keys/household.age SEGMENT` asks for the passphrase."""
    hub = Hub(hub_dir)
    try:
        segment = import_files(hub, "porch", parse_time("2026-11-20T14:00:00Z"), [clip25],
                               progress=False)[0]
    finally:
        hub.close()
    out = tmp_path / "recovered.mp4"
    child = pexpect.spawn("age", ["-d", "-i", str(hub_dir / "keys" / "household.age"),
                                  "-o", str(out), str(hub_dir / segment.path)], timeout=60)
    child.expect("passphrase")
    child.sendline(passphrase)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    import av

    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 150


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_the_documented_recovery_joins_a_day_with_age_and_ffmpeg_alone(
        hub_dir, clip25, passphrase, tmp_path):
    """docs/vault.md's recipe, run as written: unlock, decrypt a day, join it with -safe 0."""
    hub = Hub(hub_dir)
    try:
        segments = import_files(hub, "porch", parse_time("2026-11-28T14:00:00Z"), [clip25],
                                progress=False)
    finally:
        hub.close()
    block = (ROOT / "docs" / "vault.md").read_text().split("# Or unlock the identity once", 1)[1]
    commands = [line for line in block.split("```", 1)[0].splitlines()[1:]
                if line and not line.startswith("#")]
    assert commands[0] == "age -d -o key.txt DIR/keys/household.age"
    script = "\n".join(commands).replace("DIR/", f"{hub_dir}/")
    work = tmp_path / "recovery"
    work.mkdir()

    child = pexpect.spawn("bash", ["-euo", "pipefail", "-c", script], cwd=str(work),
                          timeout=120, encoding="utf-8")
    child.expect("passphrase")
    child.sendline(passphrase)
    child.expect(pexpect.EOF)
    child.close()

    assert child.exitstatus == 0, child.before
    assert len(list((work / "porch-2026-11-28").glob("*.mp4"))) == len(segments) == 3
    import av

    with av.open(str(work / "porch-2026-11-28.mp4")) as joined, av.open(str(clip25)) as source:
        assert sum(1 for _ in joined.decode(video=0)) == \
            sum(1 for _ in source.decode(video=0)) == 375


def test_vault_reads_a_segment_the_age_cli_encrypted(hub_dir, clip25, household_identity):
    """A segment sealed by `age -R` and dropped into the vault is re-indexed and read back."""
    from hub.vault.media import split_media
    from hub.vault.store import segment_name

    piece = next(split_media(clip25))
    start, end = parse_time("2026-11-21T09:00:00Z"), parse_time("2026-11-21T09:00:10Z")
    name = segment_name(start, end, "ab" * 16, "video/mp4")
    target = hub_dir / "vault" / "porch" / "2026-11-21" / name
    target.parent.mkdir(parents=True)
    subprocess.run(["age", "-R", str(hub_dir / "keys" / "household.pub"), "-o", str(target)],
                   input=piece.data, check=True)
    hub = Hub(hub_dir)
    try:
        report = check_vault(hub.vault)
        assert [(r.action, r.path) for r in report.repairs] == [
            ("reindexed", target.relative_to(hub_dir).as_posix())]
        [segment] = hub.vault.segments()
        assert (segment.camera, segment.start, segment.end) == ("porch", start, end)
        assert hub.vault.read(segment, household_identity) == piece.data
    finally:
        hub.close()
