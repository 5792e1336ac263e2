"""Vault benchmark: sealing throughput against the age CLI and plain writes; CPU and memory.

Run: python -m tests.bench.bench_vault [--sizes 2,4,8] [--count 8]
Prints figures and ratios against baselines measured in the same run; never asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1_000_000


def _make_hub(base: Path) -> Path:
    from hub.init import create_hub

    root = base / "hub"
    create_hub(root, "benchmark passphrase 1", name="bench")
    return root


def _seal_all(root: Path, files: list[Path]) -> float:
    from hub.service import Hub
    from hub.timeutil import parse_time

    hub = Hub(root)
    try:
        start = parse_time("2026-11-20T00:00:00Z")
        began = time.perf_counter()
        for path in files:
            hub.vault.seal("bench", start, start, "video/mp4", path.read_bytes())
        return time.perf_counter() - began
    finally:
        hub.close()


def _age_cli(files: list[Path], recipient: str, out: Path) -> float:
    began = time.perf_counter()
    for i, path in enumerate(files):
        subprocess.run(["age", "-r", recipient, "-o", str(out / f"{i}.age"), str(path)], check=True)
    return time.perf_counter() - began


def _plain_writes(files: list[Path], out: Path) -> float:
    began = time.perf_counter()
    for i, path in enumerate(files):
        data = path.read_bytes()
        with open(out / f"{i}.bin", "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return time.perf_counter() - began


def throughput(size_mb: float, count: int, base: Path) -> dict:
    """Seal `count` random segments of `size_mb` and time the same bytes through the baselines."""
    media = base / f"media-{size_mb}"
    media.mkdir()
    files = []
    for i in range(count):
        path = media / f"{i}.mp4"
        path.write_bytes(os.urandom(int(size_mb * MB)))  # compressed video is incompressible
        files.append(path)
    root = _make_hub(base / f"vault-{size_mb}")
    total_mb = size_mb * count
    vault_s = _seal_all(root, files)
    recipient = (root / "keys" / "household.pub").read_text().strip()
    figures = {"segment_mb": size_mb, "segments": count,
               "vault_mb_s": total_mb / vault_s}
    if shutil.which("age"):
        (base / f"age-{size_mb}").mkdir()
        figures["age_cli_mb_s"] = total_mb / _age_cli(files, recipient, base / f"age-{size_mb}")
    (base / f"plain-{size_mb}").mkdir()
    figures["plain_mb_s"] = total_mb / _plain_writes(files, base / f"plain-{size_mb}")
    return figures


def cpu_per_camera_hour(base: Path, seconds: float) -> dict:
    """CPU seconds to cut and seal a 4 Mbit/s H.264 stream, scaled to one camera-hour."""
    from hub.service import Hub
    from hub.timeutil import parse_time
    from hub.vault.media import split_media
    from plugins.cameras.scene import write_clip

    clip = base / "4mbit.mp4"
    write_clip(clip, seconds=seconds, fps=15, size=(1280, 720), bit_rate=4_000_000)
    root = _make_hub(base / "cpu")
    hub = Hub(root)
    try:
        start = parse_time("2026-11-20T00:00:00Z")
        began = time.process_time()
        for piece in split_media(clip, 10.0):
            hub.vault.seal("bench", start, start, piece.media_type, piece.data)
        cpu = time.process_time() - began
    finally:
        hub.close()
    return {"clip_s": seconds, "clip_mbit_s": clip.stat().st_size * 8 / seconds / 1e6,
            "cpu_s_per_camera_hour": cpu * 3600.0 / seconds}


_CHILD = """
import json, os, sys
from pathlib import Path
from hub.service import Hub
from hub.timeutil import parse_time

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

hub = Hub(Path(sys.argv[1]))
t = parse_time("2026-11-20T00:00:00Z")
hub.vault.seal("warm-up", t, t, "video/mp4", b"x" * 1000)
rss0 = status("VmRSS")
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # reset the peak (VmHWM) to the current resident size
data = os.urandom(int(sys.argv[2]))
hub.vault.seal("bench", t, t, "video/mp4", data)
print(json.dumps({"rss0": rss0, "hwm": status("VmHWM")}))
"""


def peak_memory(size_mb: float, base: Path) -> dict:
    """Peak resident memory while a segment is held and sealed, as a multiple of its size."""
    root = _make_hub(base / f"mem-{size_mb}")
    size = int(size_mb * MB)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(root), str(size)], check=True,
                         capture_output=True, text=True).stdout
    rss = json.loads(out)
    # Counts the plaintext segment itself (1x) plus everything sealing adds on top.
    return {"segment_mb": size_mb, "peak_over_segment": (rss["hwm"] - rss["rss0"]) / size}


def main(sizes=(2, 4, 8), count=8, cpu_seconds=60.0) -> dict:
    """Run every figure and print them with their ratios."""
    with tempfile.TemporaryDirectory(prefix="porchlight-bench-") as scratch:
        base = Path(scratch)
        results = {"throughput": [], "memory": []}
        for size in sizes:
            fig = throughput(size, count, base)
            results["throughput"].append(fig)
            line = f"vault seal {size} MB segments: {fig['vault_mb_s']:.0f} MB/s"
            if "age_cli_mb_s" in fig:
                line += (f"; age CLI {fig['age_cli_mb_s']:.0f} MB/s "
                         f"(ratio {fig['vault_mb_s'] / fig['age_cli_mb_s']:.2f})")
            line += (f"; plain fsync'd writes {fig['plain_mb_s']:.0f} MB/s "
                     f"(ratio {fig['vault_mb_s'] / fig['plain_mb_s']:.2f})")
            print(line)
        cpu = cpu_per_camera_hour(base, cpu_seconds)
        results["cpu"] = cpu
        print(f"cut + seal a {cpu['clip_mbit_s']:.1f} Mbit/s 720p stream: "
              f"{cpu['cpu_s_per_camera_hour']:.1f} CPU s per camera-hour")
        for size in sizes:
            mem = peak_memory(size, base)
            results["memory"].append(mem)
            print(f"peak memory sealing a {size} MB segment: {mem['peak_over_segment']:.2f}x the segment")
        return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2,4,8")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--cpu-seconds", type=float, default=60.0)
    args = parser.parse_args()
    main(tuple(float(s) for s in args.sizes.split(",")), args.count, args.cpu_seconds)
