"""Benchmark motion analysis on 1280x720 frames against baselines measured in the same run.

Run with `python -m tests.bench.bench_motion [FRAMES]`. It prints milliseconds per frame and
ratios, and never fails on a slow machine: the figures are for reading, not for asserting.

- baseline resize+absdiff: the least any motion detector does (shrink, compare with the
  previous frame), so the ratio shows what the rest of the pipeline costs on top.
- baseline decode: PyAV decoding H.264 alone, so the ratio shows what motion adds to the
  decode that the recorder pays anyway.

Everything runs on one thread (OpenCV and the decoder), as on a busy Raspberry Pi core.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable

import av
import cv2
import numpy as np

from plugins.cameras.scene import write_scenario
from plugins.detectors.motion import MotionConfig, MotionDetector, luma_plane

SIZE = (1280, 720)
FPS = 5


def _best_ms_per_frame(run: Callable[[], int], repeats: int) -> float:
    """Run `run` (which returns how many frames it handled) and keep the fastest pass."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        count = run()
        elapsed = time.perf_counter() - start
        best = min(best, 1000 * elapsed / max(1, count))
    return best


def _decode(clip: bytes, handle: Callable[[av.VideoFrame], None] | None = None) -> int:
    count = 0
    with av.open(io.BytesIO(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        for frame in container.decode(stream):
            if handle is not None:
                handle(frame)
            count += 1
    return count


def _results(config: MotionConfig, images: list[np.ndarray]) -> list:
    detector = MotionDetector(config)
    return [detector.process(image, index / FPS) for index, image in enumerate(images)]


def main(frames: int = 150, repeats: int = 3) -> dict[str, float]:
    """Measure and print ms per 1280x720 frame for motion analysis and its baselines."""
    cv2.setNumThreads(1)
    clip_buffer = io.BytesIO()
    # A scene with a real mover, so contours, boxes and zones all do their work.
    write_scenario(clip_buffer, "walking_figure", seconds=frames / FPS, fps=FPS, size=SIZE)
    clip = clip_buffer.getvalue()
    lumas: list[np.ndarray] = []
    bgrs: list[np.ndarray] = []

    def keep(frame: av.VideoFrame) -> None:
        lumas.append(np.ascontiguousarray(luma_plane(frame)))
        bgrs.append(frame.to_ndarray(format="bgr24"))

    _decode(clip, keep)
    config = MotionConfig(zones={"lawn": [(0.0, 0.7), (1.0, 0.7), (1.0, 1.0), (0.0, 1.0)]})
    small = (int(round(SIZE[0] * config.frame_height / SIZE[1])), config.frame_height)

    def baseline_absdiff(images: list[np.ndarray]) -> Callable[[], int]:
        def run() -> int:
            previous = None
            for image in images:
                current = cv2.resize(image, small, interpolation=cv2.INTER_LINEAR)
                if previous is not None:
                    cv2.absdiff(current, previous)
                previous = current
            return len(images)
        return run

    def motion(images: list[np.ndarray]) -> Callable[[], int]:
        def run() -> int:
            detector = MotionDetector(config)
            for index, image in enumerate(images):
                detector.process(image, index / FPS)
            return len(images)
        return run

    def decode_and_motion() -> int:
        detector = MotionDetector(config)
        state = {"index": 0}

        def handle(frame: av.VideoFrame) -> None:
            detector.process(luma_plane(frame), state["index"] / FPS)
            state["index"] += 1

        return _decode(clip, handle)

    figures = {
        "baseline resize+absdiff (luma)": _best_ms_per_frame(baseline_absdiff(lumas), repeats),
        "baseline resize+absdiff (bgr)": _best_ms_per_frame(baseline_absdiff(bgrs), repeats),
        "motion (luma)": _best_ms_per_frame(motion(lumas), repeats),
        "motion (bgr)": _best_ms_per_frame(motion(bgrs), repeats),
        "baseline decode": _best_ms_per_frame(lambda: _decode(clip), repeats),
        "decode + motion (luma)": _best_ms_per_frame(decode_and_motion, repeats),
    }
    ratios = {
        "motion / resize+absdiff (luma)":
            figures["motion (luma)"] / figures["baseline resize+absdiff (luma)"],
        "motion / resize+absdiff (bgr)":
            figures["motion (bgr)"] / figures["baseline resize+absdiff (bgr)"],
        "decode+motion / decode": figures["decode + motion (luma)"] / figures["baseline decode"],
    }
    moving = sum(result.motion for result in _results(config, lumas))
    print(f"motion benchmark: {len(lumas)} frames of {SIZE[0]}x{SIZE[1]} ({moving} with motion), "
          f"one thread, best of {repeats}")
    for name, value in figures.items():
        print(f"  {name:34s} {value:8.3f} ms/frame")
    for name, value in ratios.items():
        print(f"  {name:34s} {value:8.2f}x")
    return {**figures, **ratios}


if __name__ == "__main__":
    main(frames=int(sys.argv[1]) if len(sys.argv) > 1 else 150)
