"""The motion detector and event tracker, judged against the synthetic scenarios' ground truth."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from plugins.cameras.scene import (
    HOUSE_BOTTOM,
    ROAD_BOTTOM,
    SCENARIOS,
    SIDEWALK_BOTTOM,
    FrameTruth,
    scenario_frames,
    write_scenario,
)
from plugins.detectors.motion import (
    MotionConfig,
    MotionDetector,
    MotionEvent,
    MotionEventTracker,
    MotionResult,
    luma_plane,
)

SIZE = (640, 360)
FPS = 5
SECONDS = 12.0
SEEDS = (0, 1)
ZONES = {
    "house": [(0.0, 0.0), (1.0, 0.0), (1.0, HOUSE_BOTTOM), (0.0, HOUSE_BOTTOM)],
    "street": [(0.0, SIDEWALK_BOTTOM), (1.0, SIDEWALK_BOTTOM), (1.0, ROAD_BOTTOM),
               (0.0, ROAD_BOTTOM)],
    "lawn": [(0.0, ROAD_BOTTOM), (1.0, ROAD_BOTTOM), (1.0, 1.0), (0.0, 1.0)],
}


def overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@dataclass
class Run:
    """One scenario played through a detector and a tracker."""

    truths: list[FrameTruth]
    results: list[MotionResult]
    events: list[MotionEvent]

    def counts(self) -> tuple[int, int, int]:
        """Count frame-level true positives, false positives and false negatives."""
        tp = fp = fn = 0
        for truth, result in zip(self.truths, self.results, strict=True):
            found = truth.bbox is not None and any(overlaps(box, truth.bbox)
                                                   for box in result.boxes)
            tp += truth.motion and found
            fn += truth.motion and not found
            # Motion reported anywhere but on the real mover is a false alarm.
            fp += result.motion and not found
        return tp, fp, fn


def play(name: str, *, seed: int = 0, masked: bool = True) -> Run:
    masks = [list(polygon) for polygon in SCENARIOS[name].masks] if masked else []
    detector = MotionDetector(MotionConfig(masks=masks, zones=ZONES))
    tracker = MotionEventTracker()
    truths, results, events = [], [], []
    for frame, truth in scenario_frames(name, seconds=SECONDS, fps=FPS, size=SIZE, seed=seed):
        bgr = np.ascontiguousarray(frame[..., ::-1])
        result = detector.process(bgr, truth.ts)
        truths.append(truth)
        results.append(result)
        if event := tracker.update(result, bgr):
            events.append(event)
    if event := tracker.finish():
        events.append(event)
    return Run(truths, results, events)


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, int], Run]:
    return {(name, seed): play(name, seed=seed) for name in SCENARIOS for seed in SEEDS}


def ratio(numerator: int, denominator: int) -> str:
    return f"{numerator / denominator:.3f}" if denominator else "n/a"


def test_precision_and_recall_per_scenario(runs):
    print(f"\nframe-level motion detection, {SIZE[0]}x{SIZE[1]} at {FPS} fps, seeds {SEEDS}")
    print(f"{'scenario':16s} {'tp':>4s} {'fp':>4s} {'fn':>4s} {'precision':>9s} {'recall':>7s} "
          f"{'events':>6s}")
    total = [0, 0, 0]
    for name in SCENARIOS:
        tp = fp = fn = events = 0
        for seed in SEEDS:
            counts = runs[name, seed].counts()
            tp, fp, fn = tp + counts[0], fp + counts[1], fn + counts[2]
            events += len(runs[name, seed].events)
        total = [total[0] + tp, total[1] + fp, total[2] + fn]
        print(f"{name:16s} {tp:4d} {fp:4d} {fn:4d} {ratio(tp, tp + fp):>9s} "
              f"{ratio(tp, tp + fn):>7s} {events:6d}")
    tp, fp, fn = total
    print(f"{'overall':16s} {tp:4d} {fp:4d} {fn:4d} {ratio(tp, tp + fp):>9s} "
          f"{ratio(tp, tp + fn):>7s}")

    assert tp / (tp + fp) >= 0.95
    assert tp / (tp + fn) >= 0.9


@pytest.mark.parametrize("seed", SEEDS)
def test_walking_figure_is_one_event_on_the_lawn(runs, seed):
    run = runs["walking_figure", seed]
    in_view = [truth.ts for truth in run.truths if truth.motion]

    assert len(run.events) == 1
    event = run.events[0]
    assert in_view[0] <= event.start <= in_view[0] + 1.0
    assert in_view[-1] - 1.0 <= event.end <= in_view[-1] + 1.0
    assert "lawn" in event.zones and "house" not in event.zones
    assert event.frames >= 0.9 * len(in_view)


@pytest.mark.parametrize("seed", SEEDS)
def test_car_is_one_event_in_the_street(runs, seed):
    run = runs["car", seed]

    assert len(run.events) == 1
    assert run.events[0].zones == {"street"}


@pytest.mark.parametrize("name", ["light_switch", "sensor_noise", "swaying_branch",
                                  "cloud_shadow"])
@pytest.mark.parametrize("seed", SEEDS)
def test_nuisances_raise_no_event(runs, name, seed):
    run = runs[name, seed]

    assert run.events == []
    assert not any(result.motion for result in run.results)


def test_light_switch_is_reported_as_a_lighting_change(runs):
    results = runs["light_switch", 0].results
    steps = [index for index, result in enumerate(results) if result.lighting_change]

    # On at 4 s (frame 20) and off at 9 s (frame 45), each followed by a settling second.
    assert steps[0] == 20 and 45 in steps
    assert not results[19].lighting_change and not results[44].lighting_change


def test_the_mask_is_what_silences_the_swaying_branch():
    run = play("swaying_branch", masked=False)

    assert len(run.events) >= 1
    assert all(box[0] >= 0.5 * SIZE[0] for result in run.results for box in result.boxes)


def test_snapshot_is_a_jpeg_of_the_busiest_frame(runs, tmp_path, monkeypatch):
    event = runs["walking_figure", 0].events[0]
    peak = next(truth for truth in runs["walking_figure", 0].truths
                if truth.ts == event.peak_ts)

    image = cv2.imdecode(np.frombuffer(event.snapshot, np.uint8), cv2.IMREAD_COLOR)

    assert event.snapshot.startswith(b"\xff\xd8")
    assert image.shape == (SIZE[1], SIZE[0], 3)
    assert peak.motion
    assert event.peak_area == max(result.area_fraction for result in
                                  runs["walking_figure", 0].results)


def test_decoded_luma_planes_give_the_same_event():
    clip = io.BytesIO()
    truths = write_scenario(clip, "walking_figure", seconds=SECONDS, fps=FPS, size=SIZE)
    detector = MotionDetector(MotionConfig(zones=ZONES))
    tracker = MotionEventTracker()
    events = []
    clip.seek(0)
    with av.open(clip) as container:
        for truth, frame in zip(truths, container.decode(video=0), strict=True):
            luma = luma_plane(frame)
            if event := tracker.update(detector.process(luma, truth.ts), luma):
                events.append(event)
    if event := tracker.finish():
        events.append(event)

    assert len(events) == 1
    assert "lawn" in events[0].zones
    snapshot = cv2.imdecode(np.frombuffer(events[0].snapshot, np.uint8), cv2.IMREAD_UNCHANGED)
    assert snapshot.shape == (SIZE[1], SIZE[0])


# --- The detector on hand-made frames ---------------------------------------------------------

BLANK = np.full((360, 640), 90, dtype=np.uint8)


def with_square(x: int, y: int, side: int = 60, value: int = 230) -> np.ndarray:
    frame = BLANK.copy()
    frame[y : y + side, x : x + side] = value
    return frame


def test_first_frame_only_seeds_the_background():
    detector = MotionDetector()

    assert detector.process(with_square(100, 100), 0.0) == MotionResult(0.0, False)


def test_a_new_square_is_boxed_in_source_pixels():
    detector = MotionDetector(MotionConfig(improve_contrast=False))
    detector.process(BLANK, 0.0)

    result = detector.process(with_square(300, 200), 0.2)

    assert result.motion and len(result.boxes) == 1
    x, y, w, h = result.boxes[0]
    # One motion-frame pixel is 3.6 source pixels, and dilation and blur add a few more.
    assert abs(x - 300) <= 12 and abs(y - 200) <= 12
    assert abs(x + w - 360) <= 12 and abs(y + h - 260) <= 12
    assert 0.01 < result.area_fraction < 0.05


def test_masked_motion_is_ignored_and_zones_are_named():
    config = MotionConfig(improve_contrast=False,
                          masks=[[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]],
                          zones={"left": [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)],
                                 "right": [(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)]})
    detector = MotionDetector(config)
    detector.process(BLANK, 0.0)

    assert detector.process(with_square(50, 100), 0.2).motion is False
    result = detector.process(with_square(500, 100), 0.4)
    assert result.motion and result.zones == {"right"}


def test_specks_smaller_than_the_contour_area_are_noise():
    detector = MotionDetector(MotionConfig(improve_contrast=False))
    detector.process(BLANK, 0.0)

    assert detector.process(with_square(300, 200, side=4), 0.2).motion is False


def test_a_whole_frame_change_is_lighting_not_motion():
    detector = MotionDetector()
    detector.process(with_square(100, 100), 0.0)
    brighter = cv2.add(with_square(100, 100), 80)

    result = detector.process(brighter, 0.2)

    assert result == MotionResult(0.2, False, lighting_change=True)
    # Settled on the new light, a mover is seen again.
    for ts in (0.4, 0.6, 0.8, 1.0, 1.2, 1.4):
        detector.process(brighter, ts)
    moved = brighter.copy()
    moved[250:310, 400:460] = 0
    assert detector.process(moved, 1.6).motion


def test_bgr_and_luma_frames_agree():
    gray_detector, bgr_detector = MotionDetector(), MotionDetector()
    for ts, frame in ((0.0, BLANK), (0.2, with_square(300, 200))):
        gray = gray_detector.process(frame, ts)
        bgr = bgr_detector.process(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), ts)

    assert gray == bgr and gray.motion


def test_a_new_frame_size_or_reset_reseeds():
    detector = MotionDetector()
    detector.process(BLANK, 0.0)

    assert detector.process(cv2.resize(with_square(0, 0), (320, 180)), 0.2).motion is False
    detector.reset()
    assert detector.process(with_square(300, 200), 0.4).motion is False


def test_bad_frames_are_refused_with_the_reason():
    detector = MotionDetector()

    with pytest.raises(ValueError) as caught:
        detector.process(np.zeros((36, 64), dtype=np.float32), 0.0)
    assert str(caught.value) == (
        "expected a uint8 BGR (HxWx3) or luma (HxW) frame, got float32 (36, 64)"
    )
    with pytest.raises(ValueError, match="got uint8 \\(36, 64, 4\\)"):
        detector.process(np.zeros((36, 64, 4), dtype=np.uint8), 0.0)


def test_luma_plane_is_the_decoded_y_plane():
    frame = av.VideoFrame.from_ndarray(
        np.random.default_rng(0).integers(0, 255, (72, 100, 3), dtype=np.uint8), format="rgb24"
    ).reformat(format="yuv420p")

    luma = luma_plane(frame)

    assert luma.shape == (72, 100)
    assert np.array_equal(luma, frame.to_ndarray()[:72])
    rgb = frame.reformat(format="rgb24")
    assert np.array_equal(luma_plane(rgb), rgb.to_ndarray(format="gray"))


# --- The event tracker -----------------------------------------------------------------------


def feed(tracker: MotionEventTracker, pattern: str, *, step: float = 0.2,
         zones: frozenset[str] = frozenset()) -> list[MotionEvent]:
    """Feed one result per character: '#' is motion, '.' is none."""
    events = []
    for index, mark in enumerate(pattern):
        moving = mark == "#"
        result = MotionResult(index * step, moving, ((0, 0, 1, 1),) if moving else (),
                              0.01 * (index % 7) if moving else 0.0,
                              zones if moving else frozenset())
        if event := tracker.update(result):
            events.append(event)
    if event := tracker.finish():
        events.append(event)
    return events


def test_blips_shorter_than_the_minimum_raise_no_event():
    tracker = MotionEventTracker(min_duration=1.0, max_gap=1.0)

    assert feed(tracker, "#........##...........#.#") == []


def test_short_gaps_are_bridged_and_long_gaps_split():
    tracker = MotionEventTracker(min_duration=1.0, max_gap=1.0)

    events = feed(tracker, "######....######" + "." * 6 + "########")

    assert [(event.start, event.end) for event in events] == [
        (pytest.approx(0.0), pytest.approx(3.0)), (pytest.approx(4.4), pytest.approx(5.8))
    ]
    assert events[0].frames == 12 and events[1].frames == 8


def test_event_holds_zones_peak_and_no_snapshot_without_frames():
    tracker = MotionEventTracker(min_duration=0.5, max_gap=1.0)

    events = feed(tracker, "#########", zones=frozenset({"porch"}))

    assert len(events) == 1
    event = events[0]
    assert event.zones == {"porch"}
    assert event.peak_area == pytest.approx(0.06) and event.peak_ts == pytest.approx(1.2)
    assert event.snapshot is None


def test_active_only_once_an_event_is_confirmed():
    tracker = MotionEventTracker(min_duration=0.4, max_gap=1.0, min_frames=3)
    states = []
    for index in range(4):
        tracker.update(MotionResult(index * 0.2, True, ((0, 0, 1, 1),), 0.1))
        states.append(tracker.active)

    assert states == [False, False, True, True]
    assert tracker.finish() is not None and tracker.active is False


def test_the_best_frame_is_copied_not_referenced():
    tracker = MotionEventTracker(min_duration=0.0, min_frames=1)
    frame = np.full((20, 30, 3), 200, dtype=np.uint8)
    tracker.update(MotionResult(0.0, True, ((0, 0, 5, 5),), 0.2), frame)
    frame[...] = 0  # a decoder reusing its buffer

    event = tracker.finish()

    assert cv2.imdecode(np.frombuffer(event.snapshot, np.uint8), cv2.IMREAD_COLOR).mean() > 150


def test_tracker_settings_are_checked():
    with pytest.raises(ValueError, match="min_frames >= 1"):
        MotionEventTracker(min_frames=0)


# --- The config model ------------------------------------------------------------------------


def test_config_defaults_and_toml_shaped_input():
    config = MotionConfig.model_validate(
        {"threshold": 25, "masks": [[[0, 0], [0.5, 0], [0.5, 0.5]]],
         "zones": {"front door": [[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]}}
    )

    assert config.type == "motion" and config.threshold == 25 and config.contour_area == 10
    assert config.masks == [[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5)]]
    assert set(config.zones) == {"front door"}


@pytest.mark.parametrize(
    ("data", "location", "kind"),
    [
        ({"sensitivity": 3}, ("sensitivity",), "extra_forbidden"),
        ({"threshold": 0}, ("threshold",), "greater_than_equal"),
        ({"masks": [[[0, 0], [1, 1]]]}, ("masks", 0), "too_short"),
        ({"masks": [[[0, 0], [1.5, 0], [1, 1]]]}, ("masks", 0, 1, 0), "less_than_equal"),
        ({"zones": {"a/b": [[0, 0], [1, 0], [1, 1]]}}, ("zones", "a/b", "[key]"),
         "string_pattern_mismatch"),
        ({"type": "camera"}, ("type",), "literal_error"),
    ],
)
def test_config_errors_name_the_key(data, location, kind):
    with pytest.raises(ValidationError) as caught:
        MotionConfig.model_validate(data)

    errors = caught.value.errors()
    assert [(error["loc"], error["type"]) for error in errors] == [(location, kind)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                               max_size=4),
    max_leaves=12,
)
points = st.lists(st.floats(-0.2, 1.2, allow_nan=False), min_size=2, max_size=2)
polygons = st.lists(points, min_size=0, max_size=6)
config_values = (json_values | polygons | st.lists(polygons, max_size=3)
                 | st.dictionaries(st.text(max_size=8), polygons, max_size=3))
config_keys = st.sampled_from(sorted(MotionConfig.model_fields)) | st.text(max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(config_keys, config_values, max_size=6))
def test_config_parser_raises_only_validation_errors(data):
    try:
        config = MotionConfig.model_validate(data)
    except ValidationError:
        return
    # Whatever the parser accepts, the detector can run with.
    detector = MotionDetector(config)
    detector.process(BLANK[:72, :128], 0.0)
    detector.process(with_square(10, 10, side=20)[:72, :128], 0.2)
