"""The `age` CLI (Debian's age) and the vault read each other's files: nothing is locked in."""

from __future__ import annotations

import shutil
import subprocess

import pexpect
import pytest

from hub.service import Hub
from hub.timeutil import parse_time
from hub.vault.footage import import_files
from hub.vault.repair import check_vault

pytestmark = pytest.mark.skipif(shutil.which("age") is None,
                                reason="the age CLI is not installed (scripts/setup --test)")


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
