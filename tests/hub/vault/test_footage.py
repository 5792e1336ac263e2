"""`porchlight footage`: import without the passphrase, list, export with it; bad input changes nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

START = "2026-11-20T14:00:00Z"


def _index(root: Path) -> list[dict]:
    import sqlite3

    conn = sqlite3.connect(root / "porchlight.db")
    rows = conn.execute("select id, camera, start, path, sha256 from segments order by start").fetchall()
    conn.close()
    return rows


def _vault_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in (root / "vault").rglob("*") if p.is_file())


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _list(cli, root, *extra):
    code, out, err = cli("footage", "list", "--data", root, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def test_import_list_export(hub_dir, clip25, cli, passfile, tmp_path, monkeypatch):
    monkeypatch.delenv("PORCHLIGHT_PASSPHRASE", raising=False)
    code, out, err = cli("footage", "import", "--data", hub_dir, "--camera", "porch",
                         "--start", START, clip25)
    assert code == 0, err
    assert out == "sealed 3 segments of porch into the vault\n"
    segments = _list(cli, hub_dir)
    assert [(s["camera"], s["start"], s["end"]) for s in segments] == [
        ("porch", "2026-11-20T14:00:00.000000Z", "2026-11-20T14:00:10.000000Z"),
        ("porch", "2026-11-20T14:00:10.000000Z", "2026-11-20T14:00:20.000000Z"),
        ("porch", "2026-11-20T14:00:20.000000Z", "2026-11-20T14:00:25.000000Z"),
    ]
    for s in segments:
        data = (hub_dir / _index(hub_dir)[segments.index(s)][3]).read_bytes()
        assert data.startswith(b"age-encryption.org/v1\n")
        assert s["size"] == len(data) and s["sha256"] == hashlib.sha256(data).hexdigest()
        assert s["media_type"] == "video/mp4"
    # Filters on camera and time.
    assert len(_list(cli, hub_dir, "--from", "2026-11-20T14:00:12Z")) == 2
    assert len(_list(cli, hub_dir, "--to", "2026-11-20T14:00:05Z")) == 1
    code, out, _ = cli("footage", "list", "--data", hub_dir)
    assert out.splitlines()[0].split() == ["camera", "start", "end", "type", "size", "status", "id"]
    assert [line.split()[3] for line in out.splitlines()[1:]] == ["video"] * 3

    out_mp4 = tmp_path / "export.mp4"
    code, out, err = cli("footage", "export", "--data", hub_dir, "--camera", "porch",
                         "--from", START, "--to", "2026-11-20T14:00:25Z", "--out", out_mp4,
                         "--passphrase-file", passfile)
    assert code == 0, err
    assert out == (f"wrote {out_mp4} (2026-11-20T14:00:00Z to 2026-11-20T14:00:25Z, 25.0 s) "
                   "from 3 segments\n")
    assert _frames(out_mp4) == _frames(clip25) == 375
    # Stream copy: the exported packets are the source's packets, byte for byte.
    with av.open(str(clip25)) as a, av.open(str(out_mp4)) as b:
        src = [bytes(p) for p in a.demux(video=0) if p.size]
        dst = [bytes(p) for p in b.demux(video=0) if p.size]
    assert src == dst


def test_export_needs_the_right_passphrase(hub_dir, clip25, cli, tmp_path, monkeypatch):
    monkeypatch.delenv("PORCHLIGHT_PASSPHRASE", raising=False)
    assert cli("footage", "import", "--data", hub_dir, "--camera", "porch", "--start", START,
               clip25)[0] == 0
    wrong = tmp_path / "wrong"
    wrong.write_text("not the right passphrase\n")
    out_mp4 = tmp_path / "x.mp4"
    code, out, err = cli("footage", "export", "--data", hub_dir, "--camera", "porch",
                         "--from", START, "--to", "2026-11-20T14:01:00Z", "--out", out_mp4,
                         "--passphrase-file", wrong)
    assert code == 1
    assert err == "porchlight: error: wrong passphrase for the household key\n"
    assert not out_mp4.exists() and not list(tmp_path.glob("x.mp4*"))


def test_a_missing_export_folder_is_named_before_the_passphrase_is_asked(
        hub_dir, clip25, cli, tmp_path):
    assert cli("footage", "import", "--data", hub_dir, "--camera", "porch", "--start", START,
               clip25)[0] == 0
    wrong = tmp_path / "wrong"
    wrong.write_text("not the right passphrase\n")  # never read: the folder is checked first
    out_mp4 = tmp_path / "no" / "such" / "x.mp4"
    code, out, err = cli("footage", "export", "--data", hub_dir, "--camera", "porch",
                         "--from", START, "--to", "2026-11-20T14:00:10Z", "--out", out_mp4,
                         "--passphrase-file", wrong)
    assert (code, out) == (2, "")
    assert err == (f"porchlight: error: --out: the folder {out_mp4.parent} does not exist; "
                   "create it or choose another\n")
    assert not (tmp_path / "no").exists()


def test_flipped_byte_names_the_segment_and_exports_the_rest(hub_dir, clip25, cli, passfile, tmp_path):
    cli("footage", "import", "--data", hub_dir, "--camera", "porch", "--start", START, clip25)
    rows = _index(hub_dir)
    victim = hub_dir / rows[1][3]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    out_mp4 = tmp_path / "partial.mp4"
    code, out, err = cli("footage", "export", "--data", hub_dir, "--camera", "porch",
                         "--from", START, "--to", "2026-11-20T14:00:25Z", "--out", out_mp4,
                         "--passphrase-file", passfile)
    assert code == 1
    assert err == (f"porchlight: error: wrote {out_mp4} (2026-11-20T14:00:00Z to "
                   f"2026-11-20T14:00:25Z, 25.0 s) from 2 of 3 segments; segment {rows[1][0]} "
                    f"({rows[1][3]}) is damaged: its SHA-256 does not match the index; "
                    "run `porchlight footage check`\n")
    assert _frames(out_mp4) == 150 + 75


def test_truncated_segment(hub_dir, clip25, cli, passfile, tmp_path):
    cli("footage", "import", "--data", hub_dir, "--camera", "porch", "--start", START, clip25)
    rows = _index(hub_dir)
    victim = hub_dir / rows[2][3]
    size = victim.stat().st_size
    with open(victim, "r+b") as handle:
        handle.truncate(size - 100)
    code, _, err = cli("footage", "export", "--data", hub_dir, "--camera", "porch",
                       "--from", START, "--to", "2026-11-20T14:00:25Z", "--out", tmp_path / "t.mp4",
                       "--passphrase-file", passfile)
    assert code == 1
    assert f"segment {rows[2][0]} ({rows[2][3]}) is damaged: {size - 100} bytes instead of {size} " \
        "(truncated or altered)" in err
    code, out, _ = cli("footage", "check", "--data", hub_dir)
    assert code == 1
    assert f"flagged-corrupt: {rows[2][3]} (segment {rows[2][0]}: {size - 100} bytes instead of {size})" in out
    assert [s["status"] for s in _list(cli, hub_dir)] == ["ok", "ok", "corrupt"]


def test_age_tampering_is_caught_even_with_a_matching_hash(hub_dir, clip25, household_identity):
    from hub.errors import SegmentCorrupt
    from hub.service import Hub

    hub = Hub(hub_dir)
    try:
        from hub.timeutil import parse_time
        from hub.vault.footage import import_files

        segment = import_files(hub, "porch", parse_time(START), [clip25], progress=False)[0]
        path = hub_dir / segment.path
        data = bytearray(path.read_bytes())
        data[-10] ^= 0xFF
        path.write_bytes(bytes(data))
        # An attacker who can write the disk can also fix up the index row.
        hub.db["segments"].update(segment.id, {"sha256": hashlib.sha256(data).hexdigest()})
        with pytest.raises(SegmentCorrupt, match="age cannot decrypt it"):
            hub.vault.read(hub.vault.segments()[0], household_identity)
    finally:
        hub.close()


@pytest.mark.parametrize(
    "args, message",
    [
        (["list", "--camera", "garage"], "unknown camera 'garage' (cameras on this hub: porch)"),
        (["list", "--from", "2026-11-21T00:00:00Z", "--to", "2026-11-20T00:00:00Z"],
         "--from 2026-11-21T00:00:00Z is after --to 2026-11-20T00:00:00Z"),
        (["list", "--from", "yesterday"],
         "--from: 'yesterday' is not an ISO 8601 time (example: 2026-11-28T14:00:00Z)"),
        (["list", "--to", "2026-13-01T00:00:00Z"],
         "--to: '2026-13-01T00:00:00Z' is not an ISO 8601 time (example: 2026-11-28T14:00:00Z)"),
        (["import", "--camera", "porch", "--start", "noon", "{clip}"],
         "--start: 'noon' is not an ISO 8601 time (example: 2026-11-28T14:00:00Z)"),
        (["import", "--camera", "Front Door", "--start", START, "{clip}"],
         "camera name 'Front Door' is not valid: use 1-32 of a-z, 0-9, '-' and '_', starting "
         "with a letter or digit"),
        (["import", "--camera", "porch", "--start", START, "{text}"],
         "{text}: not a media file (it is text)"),
        (["import", "--camera", "porch", "--start", START, "{clip}", "{text}"],
         "{text}: not a media file (it is text)"),
        (["import", "--camera", "porch", "--start", START, "{junk}"],
         "{junk}: not a media file (FFmpeg cannot read it: InvalidDataError)"),
        (["import", "--camera", "porch", "--start", START, "{audio}"],
         "{audio}: not camera media (no H.264/H.265/VP9/AV1 video: pcm_s16le)"),
        (["export", "--camera", "garage", "--from", START, "--to", START, "--out", "{out}"],
         "unknown camera 'garage' (cameras on this hub: porch)"),
        (["export", "--camera", "porch", "--from", "2026-11-21T00:00:00Z", "--to", START,
          "--out", "{out}"],
         "--from 2026-11-21T00:00:00Z is after --to 2026-11-20T14:00:00Z"),
        (["export", "--camera", "porch", "--from", "2025-01-01T00:00:00Z",
          "--to", "2025-01-01T01:00:00Z", "--out", "{out}"],
         "no footage of porch between 2025-01-01T00:00:00Z and 2025-01-01T01:00:00Z"),
    ],
)
def test_bad_input_changes_nothing(args, message, hub_dir, clip25, cli, passfile, tmp_path):
    cli("footage", "import", "--data", hub_dir, "--camera", "porch", "--start", START, clip25)
    text = tmp_path / "notes.txt"
    text.write_text("shopping list\n" * 50)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 8)
    audio = tmp_path / "tone.wav"
    _write_wav(audio)
    names = {"clip": str(clip25), "text": str(text), "junk": str(junk), "audio": str(audio),
             "out": str(tmp_path / "out.mp4")}
    args = [a.format(**names) for a in args]
    before_rows, before_files = _index(hub_dir), _vault_files(hub_dir)
    extra = ["--passphrase-file", str(passfile)] if args[0] == "export" else []
    code, out, err = cli("footage", args[0], "--data", hub_dir, *args[1:], *extra)
    assert code in (1, 2)
    assert err == f"porchlight: error: {message.format(**names)}\n"
    assert _index(hub_dir) == before_rows
    assert _vault_files(hub_dir) == before_files
    assert not (tmp_path / "out.mp4").exists()


def _write_wav(path: Path) -> None:
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        samples = (np.sin(np.arange(8000) / 5.0) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def test_a_snapshot_is_stored_whole(hub_dir, cli, tmp_path, household_identity):
    from hub.service import Hub

    jpeg = tmp_path / "snap.jpg"
    ok, buf = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
    jpeg.write_bytes(buf.tobytes())
    code, out, err = cli("footage", "import", "--data", hub_dir, "--camera", "porch",
                         "--start", START, jpeg)
    assert code == 0, err
    [segment] = _list(cli, hub_dir)
    assert segment["media_type"] == "image/jpeg"
    code, out, _ = cli("footage", "list", "--data", hub_dir)
    # People read times to the second; --json keeps the index's microseconds.
    to_second = [segment["start"][:19] + "Z", segment["end"][:19] + "Z"]
    assert out.splitlines()[1].split()[:4] == ["porch", *to_second, "snapshot"]
    hub = Hub(hub_dir)
    try:
        assert hub.vault.read(hub.vault.segments()[0], household_identity) == jpeg.read_bytes()
    finally:
        hub.close()


def test_no_plaintext_ever_reaches_the_data_dir(hub_dir, clip25, cli, passfile, tmp_path):
    """Markers from real footage and a snapshot must never appear in any file of the data dir."""
    with av.open(str(clip25)) as container:
        keyframe = next(bytes(p) for p in container.demux(video=0) if p.is_keyframe and p.size > 512)
    video_marker = keyframe[200:264]
    assert video_marker in clip25.read_bytes()  # the search can find what it looks for
    snapshot_marker = b"PORCHLIGHT-MARKER-7f3a9c-snapshot-text"
    ok, buf = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
    jpeg = buf.tobytes()
    jpeg = jpeg[:2] + b"\xff\xfe" + (len(snapshot_marker) + 2).to_bytes(2, "big") + \
        snapshot_marker + jpeg[2:]
    snap = tmp_path / "snap.jpg"
    snap.write_bytes(jpeg)
    assert cli("footage", "import", "--data", hub_dir, "--camera", "porch", "--start", START,
               clip25)[0] == 0
    assert cli("footage", "import", "--data", hub_dir, "--camera", "door", "--start", START,
               snap)[0] == 0
    out_mp4 = tmp_path / "export.mp4"
    assert cli("footage", "export", "--data", hub_dir, "--camera", "porch", "--from", START,
               "--to", "2026-11-20T14:00:25Z", "--out", out_mp4, "--passphrase-file", passfile)[0] == 0
    assert cli("footage", "check", "--data", hub_dir)[0] == 0
    assert video_marker in out_mp4.read_bytes()  # the export is where the owner asked for it
    secret = _household_secret(hub_dir, passfile)
    files = [p for p in hub_dir.rglob("*") if p.is_file()]
    assert len(files) >= 6
    for path in files:
        data = path.read_bytes()
        assert video_marker not in data, path
        assert snapshot_marker not in data, path
        assert secret not in data, path


def _household_secret(root: Path, passfile: Path) -> bytes:
    """Decrypt the household identity with the age CLI's library twin and return the key text."""
    import pyrage

    plain = pyrage.passphrase.decrypt((root / "keys" / "household.age").read_bytes(),
                                      passfile.read_text().strip())
    assert plain.startswith(b"AGE-SECRET-KEY-1")
    return plain.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")
def test_full_disk_during_import(hub_template, cli, tmp_path):
    import shutil

    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=640k", "tmpfs", str(mount)], check=True)
    try:
        root = mount / "hub"
        shutil.copytree(hub_template, root)
        from plugins.cameras.scene import write_clip

        big = tmp_path / "big.mp4"
        write_clip(big, seconds=90.0, fps=15)
        free = shutil.disk_usage(mount).free
        assert big.stat().st_size > free  # the import cannot fit
        before_rows = _index(root)
        code, out, err = cli("footage", "import", "--data", root, "--camera", "porch",
                             "--start", START, big)
        assert code == 1
        assert err.startswith("porchlight: error: the disk is full while ")
        assert "nothing was indexed (free space or lower the retention budget)" in err
        assert _index(root) == before_rows
        assert _vault_files(root) == []
        code, out, err = cli("footage", "check", "--data", root)
        assert code == 0, out
        assert out == "checked 0 segments: all whole\n"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_segments_decode_alone(hub_dir, clip25, household_identity):
    from hub.service import Hub
    from hub.timeutil import parse_time
    from hub.vault.footage import import_files

    hub = Hub(hub_dir)
    try:
        segments = import_files(hub, "porch", parse_time(START), [clip25], progress=False)
        counts = []
        for segment in segments:
            data = hub.vault.read(segment, household_identity)
            with av.open(io.BytesIO(data)) as container:
                counts.append(sum(1 for _ in container.decode(video=0)))
        assert counts == [150, 150, 75]
    finally:
        hub.close()


def test_extra_recipients_can_read_new_segments(hub_dir, clip25, household_identity):
    """A paper recovery key in [vault] extra_recipients decrypts every segment sealed after it."""
    import pyrage

    from hub.service import Hub
    from hub.timeutil import parse_time
    from hub.vault.footage import import_files

    paper = pyrage.x25519.Identity.generate()
    config = hub_dir / "config.toml"
    config.write_text(config.read_text().replace(
        "extra_recipients = []", f'extra_recipients = ["{paper.to_public()}"]'))
    hub = Hub(hub_dir)
    try:
        [first, *_] = import_files(hub, "porch", parse_time(START), [clip25], progress=False)
        ciphertext = (hub_dir / first.path).read_bytes()
        by_paper = pyrage.decrypt(ciphertext, [paper])
        assert by_paper == hub.vault.read(first, household_identity)
        assert ciphertext.count(b"\n-> X25519 ") == 2  # one stanza per recipient
    finally:
        hub.close()
