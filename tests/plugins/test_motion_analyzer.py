"""The motion analyzer as the hub runs it: decoded PyAV frames in, events with one snapshot out."""

from __future__ import annotations

import io

import av
import cv2
import numpy as np

from plugins.cameras.scene import write_scenario
from plugins.detectors.motion import MotionConfig, MotionDetector, luma_plane
from plugins.detectors.motion_analyzer import MotionAnalyzer

SIZE = (640, 360)
FPS = 5


class CountingFrame:
    """A decoded frame that counts its conversions to an array (the cost under test)."""

    conversions = 0

    def __init__(self, frame: av.VideoFrame) -> None:
        self._frame = frame

    def __getattr__(self, name):
        return getattr(self._frame, name)

    def to_ndarray(self, **kwargs):
        CountingFrame.conversions += 1
        return self._frame.to_ndarray(**kwargs)


def decoded_busy_scene(seconds: float) -> list[tuple[float, av.VideoFrame]]:
    """Decode the busy scene packet by packet, as the recorder does."""
    clip = io.BytesIO()
    write_scenario(clip, "passers_by", seconds=seconds, fps=FPS, size=SIZE)
    clip.seek(0)
    frames = []
    with av.open(clip) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            for frame in packet.decode():
                frames.append((len(frames) / FPS, frame))
    return frames


def test_only_the_kept_frame_is_converted_to_colour():
    frames = decoded_busy_scene(12.0)
    analyzer = MotionAnalyzer(MotionConfig())
    CountingFrame.conversions = 0
    updates = [analyzer.feed(CountingFrame(frame), ts) for ts, frame in frames]
    active = sum(update.active for update in updates)
    conversions_while_open = CountingFrame.conversions
    closed = analyzer.finish()

    # Someone is always walking: one long event, almost every frame in it.
    assert active >= 0.9 * len(frames)
    assert closed.event is not None
    assert conversions_while_open == 0
    assert CountingFrame.conversions == 1
    # The kept frame is the busiest one, not a later frame that reused its decoder buffer.
    detector = MotionDetector(MotionConfig())
    areas = [detector.process(luma_plane(frame), ts).area_fraction for ts, frame in frames]
    busiest = areas.index(max(areas))
    snapshot = cv2.imdecode(np.frombuffer(closed.event["snapshot"], np.uint8), cv2.IMREAD_COLOR)
    differences = [float(np.abs(frame.to_ndarray(format="bgr24").astype(np.int16)
                                - snapshot).mean()) for _, frame in frames]
    assert int(np.argmin(differences)) == busiest
    assert differences[busiest] < 3.0  # JPEG loss only
