"""The built-in `motion` detector as the hub uses it: frames in, motion state and events out."""

from __future__ import annotations

from dataclasses import dataclass

import av

from hub.hookspecs import hookimpl
from plugins.detectors.motion import MotionConfig, MotionDetector, MotionEventTracker, luma_plane


@dataclass(frozen=True)
class AnalysisUpdate:
    """What one analysed frame changed: whether motion is on, since when, and a closed event."""

    active: bool
    since: float | None
    event: dict | None


class MotionAnalyzer:
    """Run the motion detector and the event tracker over a camera's decoded frames."""

    Config = MotionConfig

    def __init__(self, config: MotionConfig) -> None:
        self.detector = MotionDetector(config)
        self.tracker = MotionEventTracker()

    def feed(self, frame: av.VideoFrame, ts: float) -> AnalysisUpdate:
        """Analyse one frame taken at `ts` (epoch seconds)."""
        result = self.detector.process(luma_plane(frame), ts)
        # Colour for the snapshot only: the tracker converts the one frame it keeps, when the
        # event closes. Converting every frame with motion cost more than the detector itself.
        closed = self.tracker.update(result, lambda: frame.to_ndarray(format="bgr24"))
        return self._update(closed)

    def finish(self) -> AnalysisUpdate:
        """Close the open event at the end of the stream."""
        return self._update(self.tracker.finish())

    def _update(self, closed) -> AnalysisUpdate:
        event = None
        if closed is not None:
            event = {"start": closed.start, "end": closed.end, "zones": sorted(closed.zones),
                     "peak_area": closed.peak_area, "snapshot": closed.snapshot}
        open_event = self.tracker._open if self.tracker.active else None
        return AnalysisUpdate(self.tracker.active, open_event.start if open_event else None, event)


@hookimpl
def porchlight_detector_types():
    """Offer the motion detector."""
    return {"motion": MotionAnalyzer}
