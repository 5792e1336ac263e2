"""The synthetic camera: clips the vault tests rely on, and scenarios with ground truth."""

from __future__ import annotations

import io

import av
import cv2
import numpy as np
import pytest

from plugins.cameras.scene import (
    SCENARIOS,
    encode_frames,
    scenario_frames,
    scene_frames,
    write_clip,
    write_scenario,
)

SIZE = (320, 180)


def decode(data: bytes) -> tuple[list[av.VideoFrame], list[bool]]:
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(video=0))
    return frames, [frame.key_frame for frame in frames]


@pytest.mark.parametrize("container", ["mp4", "mpegts"])
def test_write_clip_encodes_h264_with_one_keyframe_per_gop(container):
    out = io.BytesIO()

    write_clip(out, seconds=2, fps=10, size=SIZE, gop_seconds=0.5, container=container)

    frames, keys = decode(out.getvalue())
    assert len(frames) == 20
    assert (frames[0].width, frames[0].height) == SIZE
    assert [index for index, key in enumerate(keys) if key] == [0, 5, 10, 15]


def test_write_clip_to_a_path_with_a_bit_rate(tmp_path):
    path = tmp_path / "clip.mp4"

    write_clip(path, seconds=1, fps=15, size=SIZE, bit_rate=200_000, seed=3)

    frames, _ = decode(path.read_bytes())
    assert len(frames) == 15


def test_scene_frames_are_deterministic_by_seed():
    first = list(scene_frames(0.4, fps=10, size=SIZE, seed=1))
    again = list(scene_frames(0.4, fps=10, size=SIZE, seed=1))
    other = list(scene_frames(0.4, fps=10, size=SIZE, seed=2))

    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_encode_frames_refuses_an_empty_scene():
    with pytest.raises(ValueError, match="^no frames to encode$"):
        encode_frames(io.BytesIO(), [])


def test_unknown_scenario_names_the_choices():
    with pytest.raises(ValueError) as caught:
        next(scenario_frames("ufo"))

    assert str(caught.value) == (
        "unknown scenario 'ufo'; choose one of: walking_figure, car, passers_by, light_switch, "
        "cloud_shadow, sensor_noise, swaying_branch"
    )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_are_deterministic_by_seed(name):
    def frames(seed):
        return [frame for frame, _ in scenario_frames(name, seconds=1, fps=5, size=SIZE,
                                                      seed=seed)]

    first, again, other = frames(4), frames(4), frames(5)

    assert len(first) == 5
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("name", ["walking_figure", "car"])
def test_mover_truth_boxes_hold_every_changed_pixel(name):
    frames = list(scenario_frames(name, seconds=12, fps=5, size=SIZE, seed=0))
    empty = frames[0][0].astype(np.int16)
    assert frames[0][1].motion is False

    moving = [(frame, truth) for frame, truth in frames if truth.motion]

    assert len(moving) >= 10
    coverage = []
    for frame, truth in moving:
        x, y, w, h = truth.bbox
        assert 0 <= x and 0 <= y and x + w <= SIZE[0] and y + h <= SIZE[1]
        # Noise is at most +-6 per frame, so a change above 20 is the mover itself.
        changed = np.abs(frame.astype(np.int16) - empty).max(axis=2) > 20
        inside = np.zeros_like(changed)
        inside[y : y + h, x : x + w] = True
        assert changed[inside].sum() > 0
        assert changed[~inside].sum() == 0
        coverage.append(changed[inside].sum() / (w * h))
    assert np.mean(coverage) > 0.25  # the boxes are tight, not the whole frame


@pytest.mark.parametrize("name", ["light_switch", "cloud_shadow", "sensor_noise",
                                  "swaying_branch"])
def test_nuisance_scenarios_have_no_real_motion(name):
    truths = [truth for _, truth in scenario_frames(name, seconds=12, fps=5, size=SIZE)]

    assert not any(truth.motion or truth.bbox for truth in truths)
    assert SCENARIOS[name].expect_event is False


def test_light_switch_steps_the_whole_frame_up_then_down():
    means = [frame.mean() for frame, _ in scenario_frames("light_switch", seconds=12, fps=5,
                                                          size=SIZE)]

    assert means[21] > means[19] * 1.3  # on at 4 s
    assert means[46] < means[44] / 1.3  # off at 9 s


def test_cloud_shadow_darkens_slowly_and_broadly():
    frames = [frame.astype(np.float32) for frame, _ in
              scenario_frames("cloud_shadow", seconds=12, fps=5, size=SIZE)]
    darkest = min(range(len(frames)), key=lambda index: frames[index].mean())

    assert frames[darkest].mean() < frames[0].mean() * 0.85
    steps = [np.abs(b - a).mean() for a, b in zip(frames, frames[1:], strict=False)]
    assert max(steps) < 5  # slow: small change per frame


def test_swaying_branch_moves_only_inside_its_mask():
    frames = [frame for frame, _ in scenario_frames("swaying_branch", seconds=4, fps=5,
                                                    size=SIZE)]
    polygon = np.array(SCENARIOS["swaying_branch"].masks[0]) * SIZE
    mask = np.zeros((SIZE[1], SIZE[0]), dtype=np.uint8)
    cv2.fillPoly(mask, [polygon.round().astype(np.int32)], 1)

    changed = np.zeros(mask.shape, dtype=bool)
    for frame in frames[1:]:
        changed |= np.abs(frame.astype(np.int16) - frames[0]).max(axis=2) > 20

    assert changed[mask == 1].sum() > 50
    assert changed[mask == 0].sum() == 0


def test_write_scenario_returns_truth_for_every_encoded_frame():
    out = io.BytesIO()

    truth = write_scenario(out, "car", seconds=6, fps=5, size=SIZE)

    frames, keys = decode(out.getvalue())
    assert len(frames) == len(truth) == 30
    assert [t.index for t in truth] == list(range(30))
    assert any(t.motion for t in truth)
    assert keys[0] and keys[5]
