"""Motion detection on decoded frames, in the style of Frigate's improved motion detector.

Each frame is shrunk to about 100 pixels high, turned grey, contrast-stretched and blurred,
then compared with a running-average background. Changed pixels are thresholded and dilated
into blobs; blobs smaller than `contour_area` are noise. When most of the frame changes at
once it is a lighting change (a porch light, the camera's IR switch), not motion: the
background is re-seeded from the current frame and no motion is reported.

`MotionEventTracker` turns the per-frame results into events with a start, an end, the zones
touched, the peak moving area and a JPEG snapshot of the busiest frame. Snapshots stay in
memory: footage must never reach the disk unencrypted, so writing them is the vault's job.

Frames are numpy arrays: BGR (OpenCV's order, PyAV's `bgr24`) or a single luma plane, which
is the cheapest input since a decoder's Y plane is already grey. Feeding at most about 5
frames a second is the caller's job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
"""A box in pixels of the source frame: x, y, width, height."""

Coordinate = Annotated[float, Field(ge=0.0, le=1.0)]
NormalizedPolygon = Annotated[
    list[tuple[Coordinate, Coordinate]], Field(min_length=3, max_length=100)
]
"""A polygon as [x, y] points in 0..1 of the frame's width and height."""
ZoneName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w .-]+$")]

# After a lighting change the camera's auto-exposure may still be ramping: follow it quickly
# and report nothing for a moment rather than flag every frame of the ramp.
_SETTLE_SECONDS = 1.0
_SETTLE_ALPHA = 0.5
# Percentiles for the contrast stretch, so a few hot pixels do not set the range.
_STRETCH_LOW, _STRETCH_HIGH = 0.02, 0.98
_MOVER_ALPHA_FACTOR = 0.25


class MotionConfig(BaseModel):
    """Per-camera motion settings; sizes refer to the ~100-pixel-high motion frame."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["motion"] = "motion"
    threshold: int = Field(
        30, ge=1, le=255, description="grey-level change that marks a pixel as changed; "
        "lower is more sensitive"
    )
    contour_area: int = Field(
        10, ge=1, le=10_000, description="smallest moving blob, in pixels of the motion frame"
    )
    frame_height: int = Field(100, ge=32, le=360, description="height of the motion frame")
    frame_alpha: float = Field(
        0.2, gt=0.0, le=0.5, description="how fast the background learns, per frame at "
        "~5 fps; much lower lets slow cloud shadows build up into motion"
    )
    lighting_threshold: float = Field(
        0.4, gt=0.0, le=1.0, description="changed fraction of the frame above which a change "
        "is lighting, not motion"
    )
    improve_contrast: bool = True
    masks: list[NormalizedPolygon] = Field(default_factory=list, max_length=64)
    zones: dict[ZoneName, NormalizedPolygon] = Field(default_factory=dict, max_length=64)


@dataclass(frozen=True, slots=True)
class MotionResult:
    """What the detector saw in one frame."""

    ts: float
    motion: bool
    boxes: tuple[Box, ...] = ()
    area_fraction: float = 0.0
    """Fraction of the frame covered by moving blobs."""
    zones: frozenset[str] = frozenset()
    lighting_change: bool = False


class MotionDetector:
    """Detect motion in a stream of frames from one camera."""

    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self._source_shape: tuple[int, int] | None = None
        self._small_size = (0, 0)
        self._scale = (1.0, 1.0)
        self._background: np.ndarray | None = None
        self._stretch: tuple[float, float] | None = None
        self._valid: np.ndarray | None = None
        self._valid_pixels = 0
        self._zones: dict[str, np.ndarray] = {}
        self._settle_until = float("-inf")
        self._kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))

    def reset(self) -> None:
        """Forget the background, as after the stream restarts or the camera moves."""
        self._background = None
        self._stretch = None
        self._settle_until = float("-inf")

    def process(self, frame: np.ndarray, ts: float) -> MotionResult:
        """Compare one frame (BGR or luma, uint8) taken at `ts` seconds with the background."""
        small = self._prepare(frame)
        if self._background is None:
            self._background = small.astype(np.float32)
            return MotionResult(ts, False)
        background = self._background
        config = self.config
        delta = cv2.absdiff(small, cv2.convertScaleAbs(background))
        _, changed = cv2.threshold(delta, config.threshold, 255, cv2.THRESH_BINARY)
        if self._valid is not None:
            cv2.bitwise_and(changed, self._valid, dst=changed)
        changed_fraction = cv2.countNonZero(changed) / self._valid_pixels
        if changed_fraction > config.lighting_threshold:
            log.debug("lighting change at %s: %.0f%% of the frame changed", ts,
                      100 * changed_fraction)
            background[...] = small
            self._stretch = None
            self._settle_until = ts + _SETTLE_SECONDS
            return MotionResult(ts, False, lighting_change=True)
        if ts < self._settle_until:
            cv2.accumulateWeighted(small, background, _SETTLE_ALPHA)
            return MotionResult(ts, False, lighting_change=True)
        if changed_fraction == 0.0:
            cv2.accumulateWeighted(small, background, config.frame_alpha)
            return MotionResult(ts, False)
        dilated = cv2.dilate(changed, self._kernel)
        if self._valid is not None:
            cv2.bitwise_and(dilated, self._valid, dst=dilated)
        contours, _ = cv2.findContours(dilated, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        kept = [c for c in contours if cv2.contourArea(c) >= config.contour_area]
        if not kept:
            cv2.accumulateWeighted(small, background, config.frame_alpha)
            return MotionResult(ts, False)
        moving = np.zeros_like(dilated)
        cv2.drawContours(moving, kept, -1, 255, thickness=cv2.FILLED)
        self._learn(small, moving)
        area_fraction = cv2.countNonZero(moving) / moving.size
        zones = frozenset(
            name for name, zone in self._zones.items()
            # A zone counts when a blob covers at least a blob's worth of it, not when
            # dilation merely grazes its edge.
            if cv2.countNonZero(cv2.bitwise_and(moving, zone)) >= config.contour_area
        )
        return MotionResult(ts, True, self._boxes(kept), area_fraction, zones)

    def _learn(self, small: np.ndarray, moving: np.ndarray) -> None:
        # Under a mover the background learns slower, so a passing car leaves no ghost that
        # keeps "moving" after it has gone; a parked car still fades in after a while.
        alpha = self.config.frame_alpha
        still = cv2.bitwise_not(moving)
        cv2.accumulateWeighted(small, self._background, alpha, mask=still)
        cv2.accumulateWeighted(small, self._background, alpha * _MOVER_ALPHA_FACTOR, mask=moving)

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (
            frame.ndim == 3 and frame.shape[2] != 3
        ):
            raise ValueError(
                f"expected a uint8 BGR (HxWx3) or luma (HxW) frame, got {frame.dtype} "
                f"{frame.shape}"
            )
        height, width = frame.shape[:2]
        if self._source_shape != (height, width):
            self._configure(height, width)
        # Resize first: everything after runs on ~18k pixels instead of ~1M.
        small = cv2.resize(frame, self._small_size, interpolation=cv2.INTER_LINEAR)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        if self.config.improve_contrast:
            small = self._stretch_contrast(small)
        return cv2.GaussianBlur(small, (5, 5), 0)

    def _stretch_contrast(self, small: np.ndarray) -> np.ndarray:
        hist = cv2.calcHist([small], [0], self._valid, [256], [0, 256]).ravel()
        cdf = np.cumsum(hist)
        low = float(np.searchsorted(cdf, _STRETCH_LOW * cdf[-1]))
        high = float(np.searchsorted(cdf, _STRETCH_HIGH * cdf[-1]))
        # Smooth the range over time: a large dark car entering would otherwise shift the
        # whole frame's grey levels and light up every pixel as "changed".
        if self._stretch is None:
            self._stretch = (low, high)
        else:
            alpha = self.config.frame_alpha
            old_low, old_high = self._stretch
            self._stretch = (old_low + alpha * (low - old_low),
                             old_high + alpha * (high - old_high))
        low, high = self._stretch
        scale = 255.0 / max(high - low, 16.0)
        return cv2.convertScaleAbs(small, alpha=scale, beta=-low * scale)

    def _configure(self, height: int, width: int) -> None:
        small_h = min(self.config.frame_height, height)
        small_w = max(1, int(round(width * small_h / height)))
        self._source_shape = (height, width)
        self._small_size = (small_w, small_h)
        self._scale = (width / small_w, height / small_h)
        self._background = None
        self._stretch = None
        if self.config.masks:
            masked = _rasterize(self.config.masks, small_w, small_h)
            self._valid = cv2.bitwise_not(masked)
            self._valid_pixels = max(1, cv2.countNonZero(self._valid))
        else:
            self._valid = None
            self._valid_pixels = small_w * small_h
        self._zones = {
            name: _rasterize([polygon], small_w, small_h)
            for name, polygon in self.config.zones.items()
        }

    def _boxes(self, contours: list[np.ndarray]) -> tuple[Box, ...]:
        sx, sy = self._scale
        height, width = self._source_shape or (0, 0)
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            left, top = int(x * sx), int(y * sy)
            boxes.append((left, top, min(width - left, int(np.ceil(w * sx))),
                          min(height - top, int(np.ceil(h * sy)))))
        return tuple(boxes)


# Pixel formats whose first plane is the 8-bit luma (Y) plane, as decoders hand them out.
_LUMA_FIRST_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
)


def luma_plane(frame: Any) -> np.ndarray:
    """Return a decoded PyAV video frame's Y plane as an HxW uint8 array, without copying."""
    if frame.format.name not in _LUMA_FIRST_FORMATS:
        return frame.to_ndarray(format="gray")
    plane = frame.planes[0]
    # Rows are padded to line_size bytes; slice the padding off instead of converting.
    rows = np.frombuffer(plane, dtype=np.uint8, count=plane.line_size * frame.height)
    return rows.reshape(frame.height, plane.line_size)[:, : frame.width]


def _rasterize(polygons: list[list[tuple[float, float]]], width: int, height: int) -> np.ndarray:
    """Fill normalized polygons into a uint8 mask of the given size (255 inside)."""
    mask = np.zeros((height, width), dtype=np.uint8)
    scale = np.array([width, height], dtype=np.float64)
    points = [np.round(np.asarray(polygon, dtype=np.float64) * scale).astype(np.int32)
              for polygon in polygons]
    cv2.fillPoly(mask, points, 255)
    return mask


# --- Events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MotionEvent:
    """A stretch of motion: when, where, how much, and a snapshot of its busiest frame."""

    start: float
    end: float
    zones: frozenset[str]
    peak_area: float
    peak_ts: float
    frames: int
    """How many frames in the event had motion."""
    snapshot: bytes | None
    """JPEG of the busiest frame, in memory only; None when no frame was given."""


@dataclass(slots=True)
class _OpenEvent:
    start: float
    last: float
    frames: int = 0
    zones: set[str] = field(default_factory=set)
    peak_area: float = -1.0
    peak_ts: float = 0.0
    best_frame: np.ndarray | Callable[[], np.ndarray] | None = None


class MotionEventTracker:
    """Group per-frame motion results into events, ignoring blips and short gaps."""

    def __init__(
        self,
        *,
        min_duration: float = 1.0,
        max_gap: float = 2.0,
        min_frames: int = 3,
        snapshot_quality: int = 85,
    ) -> None:
        if min_duration < 0 or max_gap < 0 or min_frames < 1 or not 1 <= snapshot_quality <= 100:
            raise ValueError("min_duration and max_gap must be >= 0, min_frames >= 1 and "
                             "snapshot_quality 1..100")
        self.min_duration = min_duration
        self.max_gap = max_gap
        self.min_frames = min_frames
        self.snapshot_quality = snapshot_quality
        self._open: _OpenEvent | None = None

    @property
    def active(self) -> bool:
        """Tell whether a confirmed event is in progress."""
        event = self._open
        return event is not None and self._confirmed(event)

    def update(
        self, result: MotionResult, frame: np.ndarray | Callable[[], np.ndarray] | None = None
    ) -> MotionEvent | None:
        """Add one frame's result (and the frame, for the snapshot); return an event it closes.

        `frame` may be a function that returns the BGR or luma image: it is called only when
        the event closes, for the one frame kept as its snapshot.
        """
        closed = None
        event = self._open
        if event is not None and result.ts - event.last > self.max_gap:
            closed = self._close()
            event = None
        if result.motion:
            if event is None:
                event = self._open = _OpenEvent(start=result.ts, last=result.ts)
            event.last = result.ts
            event.frames += 1
            event.zones |= result.zones
            if result.area_fraction > event.peak_area:
                event.peak_area = result.area_fraction
                event.peak_ts = result.ts
                # Copy an array: decoders reuse their frame buffers. A function holds its
                # own reference to the decoded frame, and converting waits until the close.
                event.best_frame = frame.copy() if isinstance(frame, np.ndarray) else frame
        return closed

    def finish(self) -> MotionEvent | None:
        """Close the open event at the end of the stream, if it qualifies."""
        return self._close() if self._open is not None else None

    def _confirmed(self, event: _OpenEvent) -> bool:
        return event.frames >= self.min_frames and event.last - event.start >= self.min_duration

    def _close(self) -> MotionEvent | None:
        event, self._open = self._open, None
        if event is None or not self._confirmed(event):
            return None
        snapshot = None
        best = event.best_frame
        image = best() if callable(best) else best
        if image is not None:
            ok, jpeg = cv2.imencode(".jpg", image,
                                    [cv2.IMWRITE_JPEG_QUALITY, self.snapshot_quality])
            snapshot = jpeg.tobytes() if ok else None
        return MotionEvent(event.start, event.last, frozenset(event.zones),
                           max(0.0, event.peak_area), event.peak_ts, event.frames, snapshot)
