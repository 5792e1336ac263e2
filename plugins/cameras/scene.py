"""Synthetic camera: a generated scene encoded to H.264 in process with PyAV.

It feeds `porchlight demo` and the tests with no external files. The scene is a textured
backdrop with a moving object and sensor noise, so the encoder produces realistic packets.

`scenario_frames` adds scenes with ground truth for the motion detector: a front yard seen
from a porch camera, with either a real mover (a walking figure, a car) or a nuisance that
must not raise an event (a light switch, a cloud shadow, sensor noise, a swaying branch).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

Box = tuple[int, int, int, int]
"""A box in pixels: x, y, width, height."""

Polygon = tuple[tuple[float, float], ...]
"""A polygon in normalized coordinates (0..1 of the frame's width and height)."""


def scene_frames(
    seconds: float, fps: int = 15, size: tuple[int, int] = (640, 360), seed: int = 0
) -> Iterator[np.ndarray]:
    """Yield RGB frames of a backdrop with a moving object and sensor noise."""
    width, height = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    backdrop = np.stack(
        [
            (96 + 40 * np.sin(xx / 37.0) + 20 * np.cos(yy / 23.0)),
            (110 + 30 * np.cos(xx / 51.0 + yy / 71.0)),
            (90 + 25 * np.sin(yy / 19.0)),
        ],
        axis=-1,
    ).astype(np.int16)
    box = max(8, height // 6)
    for index in range(int(round(seconds * fps))):
        frame = backdrop + rng.integers(-6, 7, size=backdrop.shape, dtype=np.int16)
        x = int((index * 7) % max(1, width - box))
        y = int(height / 2 + (height / 4) * np.sin(index / 9.0)) - box // 2
        frame[y : y + box, x : x + box] = (200, 60, 40)
        yield np.clip(frame, 0, 255).astype(np.uint8)


def encode_frames(
    out: str | Path | io.BytesIO,
    frames: Iterable[np.ndarray],
    *,
    fps: int = 15,
    gop_seconds: float = 1.0,
    container: str = "mp4",
    bit_rate: int | None = None,
) -> int:
    """Encode RGB frames to an H.264 file (MP4 or MPEG-TS) with a keyframe per GOP."""
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError("no frames to encode")
    height, width = first.shape[:2]
    # A path, or any writable binary file object (BytesIO, a pipe for the live camera).
    target = out if hasattr(out, "write") else str(out)
    count = 0
    with av.open(target, mode="w", format=container) as output:
        stream = output.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        gop = max(1, int(round(gop_seconds * fps)))
        stream.codec_context.gop_size = gop
        # A fixed GOP and no scene cuts make every segment start on a keyframe at a known time.
        options = {"preset": "ultrafast", "tune": "zerolatency", "keyint": str(gop),
                   "min-keyint": str(gop), "scenecut": "0"}
        if bit_rate:
            stream.bit_rate = bit_rate
        else:
            options["crf"] = "28"
        stream.options = options
        for rgb in _chain_first(first, iterator):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = count
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                output.mux(packet)
            count += 1
        for packet in stream.encode(None):
            output.mux(packet)
    return count


def write_clip(
    out: str | Path | io.BytesIO,
    *,
    seconds: float,
    fps: int = 15,
    size: tuple[int, int] = (640, 360),
    gop_seconds: float = 1.0,
    seed: int = 0,
    container: str = "mp4",
    bit_rate: int | None = None,
) -> None:
    """Encode a synthetic scene to an H.264 file (MP4 or MPEG-TS) with a keyframe per GOP."""
    encode_frames(out, scene_frames(seconds, fps, size, seed), fps=fps,
                  gop_seconds=gop_seconds, container=container, bit_rate=bit_rate)


# A capture-time stamp: 32 bits of the capture time in milliseconds and an 8-bit check, as a row
# of black and white cells across the top of the frame, large enough to survive H.264.
STAMP_CELLS = 40


def stamp_time(frame: np.ndarray, ms: int) -> None:
    """Draw a capture time (milliseconds, kept modulo 2**32) across the top of an RGB frame."""
    value = ms % (1 << 32)
    check = sum(value.to_bytes(4, "big")) % 256
    bits = [(value >> (31 - i)) & 1 for i in range(32)] + [(check >> (7 - i)) & 1 for i in range(8)]
    cell = max(4, frame.shape[1] // STAMP_CELLS)
    for index, bit in enumerate(bits):
        frame[0:cell, index * cell:(index + 1) * cell] = 235 if bit else 16


def read_stamp(frame: np.ndarray) -> int | None:
    """Read the capture time stamped into an RGB frame; None if it is not there or damaged."""
    cell = max(4, frame.shape[1] // STAMP_CELLS)
    row = frame[cell // 2, :, :].mean(axis=-1) if frame.ndim == 3 else frame[cell // 2]
    bits = [int(row[index * cell + cell // 2] > 128) for index in range(STAMP_CELLS)]
    value = int("".join(map(str, bits[:32])), 2)
    check = int("".join(map(str, bits[32:])), 2)
    return value if sum(value.to_bytes(4, "big")) % 256 == check else None


def _chain_first(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


# --- Scenarios with ground truth -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameTruth:
    """What really happens in one frame of a scenario."""

    index: int
    ts: float
    motion: bool
    """True when a real mover (person, car) is in view; nuisances are never real motion."""
    bbox: Box | None
    """The mover's box in pixels, clipped to the frame; None when there is no mover."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named synthetic scene and how a camera owner would configure it."""

    name: str
    description: str
    expect_event: bool
    masks: tuple[Polygon, ...] = ()
    """Regions the owner masks out (normalized polygons), e.g. a tree that sways in the wind."""


# Regions of the yard, in normalized coordinates, shared by the backdrop and the tests' zones.
HOUSE_BOTTOM = 0.36
SIDEWALK_BOTTOM = 0.46
ROAD_BOTTOM = 0.70

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("walking_figure", "a person walks across the lawn, left to right", True),
        Scenario("car", "a car drives along the street, right to left", True),
        Scenario("passers_by", "a busy pavement: people walk across the yard all the time, "
                 "both ways", True),
        Scenario("light_switch", "the porch light goes on, then off (global brightness steps)",
                 False),
        Scenario("cloud_shadow", "a large soft cloud shadow drifts slowly over the yard", False),
        Scenario("sensor_noise", "nothing moves; heavy night-time sensor noise and hot pixels",
                 False),
        Scenario("swaying_branch", "a branch sways in the wind in the top-right corner", False,
                 masks=(((0.55, 0.0), (1.0, 0.0), (1.0, 0.62), (0.55, 0.62)),)),
    )
}


def scenario_frames(
    name: str,
    *,
    seconds: float = 12.0,
    fps: int = 5,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
) -> Iterator[tuple[np.ndarray, FrameTruth]]:
    """Yield RGB frames of a named scenario, each with its ground truth."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
    if fps <= 0 or seconds < 0:
        raise ValueError("fps must be positive and seconds not negative")
    width, height = size
    rng = np.random.default_rng(seed)
    backdrop = _backdrop(width, height, rng)
    # Night-time gain makes the sensor_noise scenario noisier than daylight.
    noise = 16 if name == "sensor_noise" else 6
    draw = _DRAWERS[name]
    for index in range(int(round(seconds * fps))):
        ts = index / fps
        frame = backdrop.copy()
        bbox = draw(frame, ts, rng)
        image = frame.astype(np.int16)
        image += rng.integers(-noise, noise + 1, size=image.shape, dtype=np.int16)
        if name == "sensor_noise":
            # Hot pixels: isolated saturated dots that blur and the contour area must absorb.
            ys = rng.integers(0, height, size=max(1, width * height // 2000))
            xs = rng.integers(0, width, size=ys.size)
            image[ys, xs] = 255
        yield (np.clip(image, 0, 255).astype(np.uint8),
               FrameTruth(index, ts, bbox is not None, bbox))


def write_scenario(
    out: str | Path | io.BytesIO,
    name: str,
    *,
    seconds: float = 12.0,
    fps: int = 15,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    gop_seconds: float = 1.0,
    container: str = "mp4",
    bit_rate: int | None = None,
) -> list[FrameTruth]:
    """Encode a named scenario to H.264 and return its per-frame ground truth."""
    truth: list[FrameTruth] = []

    def frames() -> Iterator[np.ndarray]:
        for frame, frame_truth in scenario_frames(name, seconds=seconds, fps=fps, size=size,
                                                  seed=seed):
            truth.append(frame_truth)
            yield frame

    encode_frames(out, frames(), fps=fps, gop_seconds=gop_seconds, container=container,
                  bit_rate=bit_rate)
    return truth


def _backdrop(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Paint a front yard: house wall, sidewalk, street and lawn, with fixed texture."""
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height
    rows = np.empty((height, 3), dtype=np.float32)
    rows[ys < HOUSE_BOTTOM] = (168, 156, 138)
    rows[(ys >= HOUSE_BOTTOM) & (ys < SIDEWALK_BOTTOM)] = (150, 150, 146)
    rows[(ys >= SIDEWALK_BOTTOM) & (ys < ROAD_BOTTOM)] = (88, 88, 94)
    rows[ys >= ROAD_BOTTOM] = (72, 118, 60)
    image = np.repeat(rows[:, None, :], width, axis=1)
    # Siding boards on the wall and a dark window, so the wall is not a flat colour.
    siding = (np.sin(np.arange(height, dtype=np.float32) * (2 * math.pi / max(4, height / 40)))
              * 10)[:, None, None]
    wall = ys < HOUSE_BOTTOM
    image[wall] += siding[wall]
    x0, x1 = int(0.12 * width), int(0.30 * width)
    y0, y1 = int(0.08 * height), int(0.28 * height)
    image[y0:y1, x0:x1] = (40, 48, 60)
    # Dashed lane marking in the middle of the street.
    lane_y = int((SIDEWALK_BOTTOM + ROAD_BOTTOM) / 2 * height)
    dash = max(4, width // 16)
    for x in range(0, width, 2 * dash):
        image[lane_y : lane_y + max(2, height // 120), x : x + dash] = (200, 200, 190)
    # Fixed texture (grass blades, asphalt grain): blurred noise that does not change per frame.
    grain = rng.normal(0, 14, size=(height, width, 1)).astype(np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), 1.2)[..., None]
    image += grain
    return np.clip(image, 0, 255).astype(np.uint8)


def _clip_box(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> Box | None:
    # A mover counts as in view once two pixel columns and rows of it are inside the frame.
    if min(x1, width) - max(x0, 0) < 2 or min(y1, height) - max(y0, 0) < 2:
        return None
    # Anti-aliased edges and rounding to whole pixels reach up to two pixels further.
    pad = 2
    left, top = max(0, int(math.floor(x0)) - pad), max(0, int(math.floor(y0)) - pad)
    right = min(width, int(math.ceil(x1)) + pad)
    bottom = min(height, int(math.ceil(y1)) + pad)
    return (left, top, right - left, bottom - top)


def _draw_nothing(frame: np.ndarray, ts: float, rng: np.random.Generator) -> Box | None:
    return None


def _draw_walking_figure(frame: np.ndarray, ts: float, rng: np.random.Generator) -> Box | None:
    height, width = frame.shape[:2]
    tall = 0.34 * height
    # A brisk walk: the figure crosses the frame in about 7 seconds, starting at 2 s.
    cx = -0.2 * tall + (ts - 2.0) * (width + 0.4 * tall) / 7.0
    if ts < 2.0 or cx - 0.3 * tall > width:
        return None
    return _draw_figure(frame, cx, 0.93 * height, tall, ts)


# The people of the busy scene: (seconds to cross, seconds between crossings, start offset,
# feet as a fraction of the height, height as a fraction of the frame's, walking right?).
# Nearer people walk lower in the frame and look taller; someone is always in view.
_PASSERS_BY = (
    (7.0, 1.5, 0.0, 0.93, 0.34, True),
    (9.0, 0.5, 3.0, 0.80, 0.26, False),
    (8.0, 2.5, 5.5, 0.99, 0.40, False),
    (11.0, 1.0, 1.5, 0.72, 0.22, True),
)


def _draw_passers_by(frame: np.ndarray, ts: float, rng: np.random.Generator) -> Box | None:
    height, width = frame.shape[:2]
    boxes = []
    for crossing, pause, offset, feet, tall_fraction, rightwards in _PASSERS_BY:
        tall = tall_fraction * height
        along = ((ts + offset) % (crossing + pause)) / crossing
        if along > 1.0:
            continue  # between crossings
        span = width + 0.6 * tall
        cx = -0.3 * tall + along * span
        if not rightwards:
            cx = width - cx
        box = _draw_figure(frame, cx, feet * height, tall, ts + offset)
        if box is not None:
            boxes.append(box)
    if not boxes:
        return None
    # One truth box around everyone, since the ground truth holds one box per frame.
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right = max(b[0] + b[2] for b in boxes)
    bottom = max(b[1] + b[3] for b in boxes)
    return (left, top, right - left, bottom - top)


def _draw_figure(frame: np.ndarray, cx: float, feet: float, tall: float,
                 ts: float) -> Box | None:
    height, width = frame.shape[:2]
    phase = math.sin(ts * 2 * math.pi * 1.8)
    hip = (cx, feet - 0.48 * tall)
    shoulder = (cx, feet - 0.82 * tall)
    thick = max(2, int(0.09 * tall))
    dark, trousers, skin = (38, 46, 70), (28, 28, 34), (196, 152, 122)
    xs = [cx - 0.13 * tall, cx + 0.13 * tall]
    for sign in (1, -1):
        foot = (cx + sign * 0.2 * tall * phase, feet)
        cv2.line(frame, _pt(hip), _pt(foot), trousers, thick, cv2.LINE_AA)
        hand = (cx - sign * 0.16 * tall * phase, feet - 0.46 * tall)
        cv2.line(frame, _pt(shoulder), _pt(hand), dark, max(2, thick * 3 // 4), cv2.LINE_AA)
        xs += [foot[0] - thick / 2, foot[0] + thick / 2, hand[0] - thick / 2, hand[0] + thick / 2]
    cv2.rectangle(frame, _pt((cx - 0.13 * tall, feet - 0.86 * tall)),
                  _pt((cx + 0.13 * tall, feet - 0.46 * tall)), dark, -1, cv2.LINE_AA)
    radius = 0.075 * tall
    cv2.circle(frame, _pt((cx, feet - tall + radius)), max(2, int(radius)), skin, -1, cv2.LINE_AA)
    return _clip_box(min(xs), feet - tall, max(xs), feet + thick / 2, width, height)


def _draw_car(frame: np.ndarray, ts: float, rng: np.random.Generator) -> Box | None:
    height, width = frame.shape[:2]
    length, body = 0.3 * width, 0.24 * height
    # About 30 km/h: the car crosses in under 3 seconds, entering from the right at 3 s.
    left = width - (ts - 3.0) * (width + length) / 2.8
    if ts < 3.0 or left + length < 0:
        return None
    bottom = (ROAD_BOTTOM - 0.02) * height
    top = bottom - body

    def at(along: float, down: float) -> tuple[int, int]:
        return _pt((left + along * length, top + down * body))

    red, glass, tyre = (160, 22, 28), (30, 40, 52), (18, 18, 18)
    cv2.rectangle(frame, at(0, 0.4), at(1, 0.88), red, -1, cv2.LINE_AA)
    cabin = np.array([at(0.22, 0.42), at(0.32, 0), at(0.72, 0), at(0.82, 0.42)], dtype=np.int32)
    cv2.fillPoly(frame, [cabin], red, cv2.LINE_AA)
    window = np.array([at(0.27, 0.38), at(0.34, 0.08), at(0.70, 0.08), at(0.77, 0.38)],
                      dtype=np.int32)
    cv2.fillPoly(frame, [window], glass, cv2.LINE_AA)
    wheel = max(2, int(0.16 * body))
    for along in (0.2, 0.8):
        centre = _pt((left + along * length, bottom - wheel * 0.6))
        cv2.circle(frame, centre, wheel, tyre, -1, cv2.LINE_AA)
    return _clip_box(left, top, left + length, bottom + wheel * 0.4, width, height)


def _draw_light_switch(frame: np.ndarray, ts: float, rng: np.random.Generator) -> Box | None:
    # The porch light goes on at 4 s and off at 9 s: a global gain and offset that saturates
    # the bright wall, as a real camera's fixed exposure would.
    if 4.0 <= ts < 9.0:
        lit = frame.astype(np.float32) * 1.45 + 18
        np.clip(lit, 0, 255, out=lit)
        frame[...] = lit.astype(np.uint8)
    return None


def _draw_cloud_shadow(frame: np.ndarray, ts: float, rng: np.random.Generator) -> Box | None:
    height, width = frame.shape[:2]
    # The shade is computed on a coarse grid and upscaled: it is smooth by nature and a
    # full-resolution Gaussian per frame would dominate the generator's run time.
    small_w, small_h = 64, max(2, int(round(64 * height / width)))
    xs = (np.arange(small_w, dtype=np.float32) + 0.5) / small_w
    ys = (np.arange(small_h, dtype=np.float32) + 0.5) / small_h
    cx, cy = -0.6 + 0.11 * ts, 0.55
    gx = np.exp(-0.5 * ((xs - cx) / 0.38) ** 2)
    gy = np.exp(-0.5 * ((ys - cy) / 0.45) ** 2)
    shade = 1.0 - 0.35 * gy[:, None] * gx[None, :]
    shade = cv2.resize(shade, (width, height), interpolation=cv2.INTER_LINEAR)
    frame[...] = (frame.astype(np.float32) * shade[..., None]).astype(np.uint8)
    return None


def _draw_swaying_branch(frame: np.ndarray, ts: float, rng: np.random.Generator) -> Box | None:
    height, width = frame.shape[:2]
    pivot = (width - 0.02 * height, -0.02 * height)
    # Two wind frequencies, so the sway never settles into one pattern the background absorbs.
    angle = math.radians(
        225 + 8 * math.sin(ts * 2 * math.pi * 0.45) + 3 * math.sin(ts * 2 * math.pi * 1.3 + 1)
    )
    bark, leaves = (84, 62, 40), (34, 78, 30)
    length = 0.5 * height
    points = [pivot]
    for step in range(1, 6):
        bend = angle + math.radians(3 * step) * math.sin(ts * 2 * math.pi * 0.45)
        prev = points[-1]
        points.append((prev[0] + math.cos(bend) * length / 5,
                       prev[1] - math.sin(bend) * length / 5))
    for index, (start, end) in enumerate(zip(points, points[1:], strict=False)):
        cv2.line(frame, _pt(start), _pt(end), bark, max(2, int(0.03 * height) - index), cv2.LINE_AA)
    for point in points[2:]:
        axes = (max(2, int(0.06 * height)), max(2, int(0.035 * height)))
        cv2.ellipse(frame, _pt(point), axes, math.degrees(angle), 0, 360, leaves, -1, cv2.LINE_AA)
    return None


def _pt(point: tuple[float, float]) -> tuple[int, int]:
    return (int(round(point[0])), int(round(point[1])))


_DRAWERS = {
    "walking_figure": _draw_walking_figure,
    "car": _draw_car,
    "passers_by": _draw_passers_by,
    "light_switch": _draw_light_switch,
    "cloud_shadow": _draw_cloud_shadow,
    "sensor_noise": _draw_nothing,
    "swaying_branch": _draw_swaying_branch,
}
