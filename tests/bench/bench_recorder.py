"""Recorder benchmark: CPU per camera-minute against ffmpeg's segment muxer, cameras per core
(against ffmpeg doing the same work alone), and the resident memory of `porchlight run` with 4
cameras.

Run: python -m tests.bench.bench_recorder [--seconds 60] [--size 1920x1080] [--sub 640x360]
Pinned to one core, as docs/install-pi.md measured it: taskset -c 0 python -m tests.bench.bench_recorder
Prints figures and ratios against baselines measured in the same run; never asserts a time.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import av


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def record_cpu(clip: Path, root: Path) -> float:
    """CPU seconds to demux, cut and seal a clip the way the live recorder does."""
    from hub.service import Hub
    from hub.timeutil import utcnow
    from hub.vault.media import SEGMENT_TYPE, SegmentCutter

    hub = Hub(root)
    try:
        began = time.process_time()
        with av.open(str(clip)) as container:
            video = container.streams.video[0]
            cutter = SegmentCutter(video, [], 10.0)
            at = utcnow()
            for packet in container.demux(video):
                closed = cutter.feed(packet)
                if closed is not None:
                    hub.vault.seal("bench", at, at + timedelta(seconds=10), SEGMENT_TYPE, closed.data)
            closed = cutter.flush()
            if closed is not None:
                hub.vault.seal("bench", at, at, SEGMENT_TYPE, closed.data)
        return time.process_time() - began
    finally:
        hub.close()


def ffmpeg_cpu(clip: Path, out: Path) -> float | None:
    """CPU seconds of `ffmpeg -c copy -f segment` on the same clip (the baseline)."""
    if shutil.which("ffmpeg") is None:
        return None
    out.mkdir()
    before = _children_cpu()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(clip), "-c", "copy", "-f", "segment",
                    "-segment_time", "10", "-reset_timestamps", "1", str(out / "%03d.mp4")],
                   check=True)
    return _children_cpu() - before


def ffmpeg_decode_cpu(clip: Path) -> float | None:
    """CPU seconds of `ffmpeg` decoding every frame of a clip and keeping none (a baseline)."""
    if shutil.which("ffmpeg") is None:
        return None
    before = _children_cpu()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(clip), "-map", "0:v", "-f", "null",
                    "-"], check=True)
    return _children_cpu() - before


def cameras_per_core(name: str, ours: float, baseline: float | None, seconds: float,
                     what: str) -> dict:
    """Print and return how many cameras one core sustains, ours and the baseline's."""
    key = f"cameras_per_core_{name}"
    results = {key: seconds / ours}
    line = f"one core sustains about {seconds / ours:.1f} cameras {what}"
    if baseline:
        results[f"{key}_baseline"] = seconds / baseline
        line += (f" (ffmpeg alone on the same work: {seconds / baseline:.1f}; "
                 f"our CPU per camera is {ours / baseline:.2f}x ffmpeg's)")
    print(line)
    return results


def analysis_cpu(clip: Path, fps_limit: float = 5.0) -> tuple[float, float, int]:
    """CPU seconds to decode every frame and run motion on at most fps_limit of them."""
    from plugins.detectors.motion import MotionConfig
    from plugins.detectors.motion_analyzer import MotionAnalyzer

    analyzer = MotionAnalyzer(MotionConfig())
    began = time.process_time()
    motion_s = 0.0
    frames = 0
    last = float("-inf")
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frames += 1
            ts = float(frame.pts * stream.time_base)
            if ts - last >= 1.0 / fps_limit:
                last = ts
                t0 = time.process_time()
                analyzer.feed(frame, ts)
                motion_s += time.process_time() - t0
    total = time.process_time() - began
    return total, motion_s, frames


def run_memory(root: Path, clip: Path, cameras: int, settle_s: float) -> int | None:
    """Resident memory (bytes) of `porchlight run` recording `cameras` RTSP streams."""
    from tests.rtsp_fixture import gst_rtsp_missing, start_rtsp_server

    if gst_rtsp_missing() is not None:
        return None
    from hub.cameras.admin import add_camera
    from hub.datadir import DataDir

    server = start_rtsp_server(files={f"/cam{i}": clip for i in range(cameras)})
    try:
        for i in range(cameras):
            add_camera(DataDir(root), f"cam{i}", rtsp=server.url(f"/cam{i}"))
        proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "--http", "--data", str(root),
                                 "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        proc.stdout.readline()
        time.sleep(settle_s)
        rss = None
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        return rss
    finally:
        server.stop()


def main(seconds: float = 60.0, size: tuple[int, int] = (1920, 1080), settle_s: float = 20.0,
         memory: bool = True, sub: tuple[int, int] | None = (640, 360)) -> dict:
    """Run the recorder figures and print them with their ratios."""
    from hub.init import create_hub
    from plugins.cameras.scene import write_clip

    with tempfile.TemporaryDirectory(prefix="porchlight-bench-") as scratch:
        base = Path(scratch)
        clip = base / "cam.mp4"
        write_clip(clip, seconds=seconds, fps=15, size=size, bit_rate=4_000_000)
        root = base / "hub"
        create_hub(root, "benchmark passphrase 1", name="bench")
        ours = record_cpu(clip, root)
        theirs = ffmpeg_cpu(clip, base / "ffmpeg")
        minutes = seconds / 60.0
        results = {"record_cpu_s_per_min": ours / minutes}
        line = (f"record {size[0]}x{size[1]} 15 fps H.264 into the vault: "
                f"{ours / minutes:.3f} CPU s per camera-minute")
        if theirs:
            results["ffmpeg_cpu_s_per_min"] = theirs / minutes
            line += f"; ffmpeg -c copy -f segment {theirs / minutes:.3f} (ratio {ours / theirs:.2f})"
        print(line)
        total, motion_only, frames = analysis_cpu(clip)
        results.update(analysis_cpu_s_per_min=total / minutes)
        print(f"analysis (decode all {frames} frames, motion at 5 fps): {total / minutes:.2f} CPU s "
              f"per camera-minute, of which motion {motion_only / minutes:.3f}")
        # Cameras per core (docs/install-pi.md): each against ffmpeg doing the same work alone,
        # measured in this run. A camera's second of video costs `cost / seconds` CPU seconds.
        decode = ffmpeg_decode_cpu(clip)
        results.update(cameras_per_core("record", ours, theirs, seconds, "recording only"))
        results.update(cameras_per_core(
            "record_analyse", ours + total, theirs + decode if theirs and decode else None,
            seconds, f"recording + analysing the {size[0]}x{size[1]} stream"))
        if sub is not None:
            sub_clip = base / "sub.mp4"
            write_clip(sub_clip, seconds=seconds, fps=15, size=sub, bit_rate=500_000)
            sub_total, _, _ = analysis_cpu(sub_clip)
            sub_decode = ffmpeg_decode_cpu(sub_clip)
            results.update(cameras_per_core(
                "record_analyse_sub", ours + sub_total,
                theirs + sub_decode if theirs and sub_decode else None, seconds,
                f"recording the {size[0]}x{size[1]} stream + analysing a {sub[0]}x{sub[1]} "
                "sub stream"))
        if memory:
            small = base / "cam720.mp4"
            write_clip(small, seconds=20.0, fps=15, size=(1280, 720), bit_rate=2_000_000)
            mem_root = base / "mem-hub"
            create_hub(mem_root, "benchmark passphrase 1", name="mem")
            rss = run_memory(mem_root, small, 4, settle_s)
            if rss is not None:
                results["run_rss_4_cameras_mb"] = rss / 2**20
                print(f"porchlight run with 4 RTSP cameras: {rss / 2**20:.0f} MB resident "
                      f"(target at most 200 MB)")
        return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--sub", default="640x360", help="a sub stream to analyse, or 'none'")
    parser.add_argument("--no-memory", action="store_true", help="skip the 4-camera run")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    sub = None if args.sub == "none" else tuple(int(v) for v in args.sub.split("x"))
    main(args.seconds, (width, height), memory=not args.no_memory, sub=sub)
