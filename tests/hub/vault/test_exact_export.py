"""Exports and agency clips cover exactly the asked range, keep the recorded timestamps (B-frames
too) and never write timestamps that go back, even from overlapping segments. Checked with
FFmpeg's own ffprobe and decoder, not with our code."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from hub.timeutil import parse_time

START = "2026-11-20T14:00:00Z"
FPS = 15


@pytest.fixture(scope="module", params=[0, 2], ids=["baseline", "bframes"])
def source(request, tmp_path_factory) -> Path:
    """Return a 25 s H.264 MP4 with a keyframe every 2 s, with or without B-frames."""
    path = tmp_path_factory.mktemp("media") / f"bf{request.param}.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={FPS}",
         "-t", "25", "-c:v", "libx264", "-preset", "ultrafast", "-bf", str(request.param),
         "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    assert _probe(path)["has_b_frames"] == request.param
    return path


def _probe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=start_time,duration,nb_read_frames,has_b_frames", "-of", "json", str(path)],
        capture_output=True, text=True, check=True).stdout
    stream = json.loads(out)["streams"][0]
    return {"start_time": float(stream["start_time"]), "duration": float(stream["duration"]),
            "frames": int(stream["nb_read_frames"]), "has_b_frames": int(stream["has_b_frames"])}


def _frame_times(path: Path) -> list[Fraction]:
    """Return the presentation time of every decoded frame, as FFmpeg's ffprobe reports it."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
         "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
    return [Fraction(line.strip().rstrip(",")).limit_denominator(1000) for line in out.split()]


def _decode_warnings(path: Path) -> str:
    """Return what FFmpeg says while demuxing and decoding the whole file (nothing if clean)."""
    return subprocess.run(["ffmpeg", "-v", "warning", "-i", str(path), "-f", "null", "-"],
                          capture_output=True, text=True).stderr


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray") for f in container.decode(video=0)]


def _import(cli, hub_dir, path, start=START):
    code, _, err = cli("footage", "import", "--data", hub_dir, "--camera", "porch",
                       "--start", start, path)
    assert code == 0, err


def _at(seconds: float) -> str:
    return (parse_time(START) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _export(cli, hub_dir, passfile, out, start, end):
    code, text, err = cli("footage", "export", "--data", hub_dir, "--camera", "porch",
                          "--from", _at(start), "--to", _at(end), "--out", out,
                          "--passphrase-file", passfile)
    assert code == 0, err
    return text


def test_a_whole_export_is_the_source_again(source, hub_dir, cli, passfile, tmp_path):
    _import(cli, hub_dir, source)
    out = tmp_path / "whole.mp4"
    text = _export(cli, hub_dir, passfile, out, 0, 25)
    assert text == (f"wrote {out} (2026-11-20T14:00:00Z to 2026-11-20T14:00:25Z, 25.0 s) "
                    "from 3 segments\n")
    # Same start (0, not shifted by the B-frame delay), duration and frames as the source.
    assert _probe(out) == _probe(source) == {
        "start_time": 0.0, "duration": 25.0, "frames": 375, "has_b_frames": _probe(source)[
            "has_b_frames"]}
    assert _frame_times(out) == _frame_times(source) == [Fraction(k, FPS) for k in range(375)]
    assert _decode_warnings(out) == ""
    with av.open(str(source)) as a, av.open(str(out)) as b:
        assert [bytes(p) for p in a.demux(video=0) if p.size] == \
            [bytes(p) for p in b.demux(video=0) if p.size]


def test_an_export_covers_exactly_the_asked_range(source, hub_dir, cli, passfile, tmp_path):
    """14:00:03-14:00:17 starts between keyframes (every 2 s) and crosses a segment boundary."""
    _import(cli, hub_dir, source)
    out = tmp_path / "exact.mp4"
    text = _export(cli, hub_dir, passfile, out, 3, 17)
    assert text == (f"wrote {out} (2026-11-20T14:00:03Z to 2026-11-20T14:00:17Z, 14.0 s) "
                    "from 2 segments\n")
    assert _probe(out)["start_time"] == 0.0
    assert _probe(out)["duration"] == 14.0
    assert _frame_times(out) == [Fraction(k, FPS) for k in range(14 * FPS)]
    assert _decode_warnings(out) == ""
    # The frames a player shows are the source's frames of 3 s to 17 s, no more, no fewer.
    shown, recorded = _frames(out), _frames(source)
    assert len(shown) == 14 * FPS
    assert all(np.array_equal(a, b) for a, b in zip(shown, recorded[3 * FPS:17 * FPS], strict=True))
    # By stream copy from the keyframe at 2 s: the file holds that GOP's first packets too.
    with av.open(str(out)) as container:
        first = next(p for p in container.demux(video=0) if p.size)
    assert first.is_keyframe and first.pts * first.time_base == Fraction(-1)


def test_an_agency_clip_covers_exactly_the_window(source, hub_dir, cli, household_identity,
                                                  tmp_path):
    from hub.service import Hub
    from hub.vault.footage import build_clip

    _import(cli, hub_dir, source)
    start, end = parse_time(_at(3)), parse_time(_at(17))
    hub = Hub(hub_dir)
    try:
        clip = build_clip(hub, hub.vault.segments("porch", start, end), household_identity,
                          start, end)
    finally:
        hub.close()
    assert (clip.start, clip.end) == (start, end)
    out = tmp_path / "clip.mp4"
    out.write_bytes(clip.data)
    assert (_probe(out)["start_time"], _probe(out)["duration"]) == (0.0, 14.0)
    assert _frame_times(out) == [Fraction(k, FPS) for k in range(14 * FPS)]
    assert _decode_warnings(out) == ""


def test_overlapping_segments_export_once_in_order_and_say_so(source, hub_dir, cli, passfile,
                                                              tmp_path):
    """Two recordings of the same moments (two hubs on one data dir) export as one timeline."""
    _import(cli, hub_dir, source)
    _import(cli, hub_dir, source, _at(4))  # the same camera again, 4 s later: 21 s overlap
    out = tmp_path / "overlap.mp4"
    text = _export(cli, hub_dir, passfile, out, 0, 29)
    assert _decode_warnings(out) == ""  # no "non monotonically increasing dts"
    # Every moment at most once, in order: the first recording up to its end at 25 s, then the
    # second from its first keyframe after that (26 s; keyframes every 2 s) to 29 s.
    assert _frame_times(out) == [Fraction(k, FPS) for k in range(25 * FPS)] + \
        [26 + Fraction(k, FPS) for k in range(3 * FPS)]
    with av.open(str(out)) as container:
        dts = [p.dts for p in container.demux(video=0) if p.size]
    assert all(a < b for a, b in zip(dts, dts[1:], strict=False))
    notes = [line for line in text.splitlines() if line.startswith("note: skipped ")]
    assert len(notes) >= 3, text
    assert all(line.endswith(": footage already written covers it (two recordings of the same "
                             "moments: was a second hub running on this data dir?)")
               or "covers all of it" in line for line in notes)
    assert text.splitlines()[-1].startswith(
        f"wrote {out} (2026-11-20T14:00:00Z to 2026-11-20T14:00:29Z, 29.0 s) from ")


def test_a_recorders_segments_that_run_past_the_wall_clock_continue_whole(
        source, hub_dir, cli, passfile, tmp_path):
    """A live recorder stamps segments by the wall clock; their frames may run longer."""
    from hub.service import Hub
    from hub.vault.media import split_media

    hub = Hub(hub_dir)
    try:
        at = parse_time(START)
        for piece in split_media(source):
            # Each segment's frames last up to 10 s; the wall clock saw 9 s of them.
            span = timedelta(seconds=(piece.offset_end - piece.offset_start) * 0.9)
            hub.vault.seal("porch", at, at + span, piece.media_type, piece.data)
            at += span
    finally:
        hub.close()
    out = tmp_path / "recorded.mp4"
    text = _export(cli, hub_dir, passfile, out, 0, 30)
    assert "note:" not in text  # nothing was taken for a second recording
    assert _probe(out)["frames"] == 375
    assert _frame_times(out) == [Fraction(k, FPS) for k in range(375)]
    assert _decode_warnings(out) == ""

