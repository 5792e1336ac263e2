"""Face redaction.

The opencv-python-headless wheel here (OpenCV 5) ships no face model: no Haar cascade files
and no cv2.CascadeClassifier, and FaceDetectorYN needs a YuNet ONNX file that no wheel ships.
OpenCV's sample images with faces are not in the wheel either, and a drawn face is not
something a real detector reliably finds. So these tests check the redaction itself with a
detector that reports known boxes, the pipeline end to end (frame count, timestamps, only the
boxes change), and the clear error when no face model is available. With an OpenCV 4.x wheel
the Haar test runs instead of the "unavailable" one.
"""

from __future__ import annotations

import io

import av
import cv2
import numpy as np
import pytest

from plugins.cameras.scene import encode_frames, write_clip
from plugins.detectors.redact import (
    FaceDetectorUnavailable,
    HaarFaceDetector,
    YuNetFaceDetector,
    blur_faces,
    blur_faces_in_clip,
    blur_regions,
    default_face_detector,
)

HAS_HAAR = hasattr(cv2, "CascadeClassifier")
FACE = (200, 120, 80, 100)


def textured(height: int = 360, width: int = 640) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def detail(image: np.ndarray) -> float:
    """Measure fine detail: the variance of the Laplacian."""
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def fixed_faces(*boxes):
    def detector(frame: np.ndarray) -> list[tuple[int, int, int, int]]:
        return list(boxes)
    return detector


def test_blurring_a_box_changes_only_that_box():
    frame = textured()
    original = frame.copy()
    x, y, w, h = FACE

    blur_regions(frame, [FACE], margin=0.0)

    outside = np.ones(frame.shape[:2], dtype=bool)
    outside[y : y + h, x : x + w] = False
    assert np.array_equal(frame[outside], original[outside])
    box, before = frame[y : y + h, x : x + w], original[y : y + h, x : x + w]
    assert detail(box) < detail(before) / 100


def test_the_margin_grows_the_box_and_stops_at_the_frame_edge():
    frame = textured()
    original = frame.copy()

    blur_regions(frame, [(600, 300, 60, 80)], margin=0.5)

    changed = np.any(frame != original, axis=2)
    rows, cols = np.nonzero(changed)
    assert cols.min() >= 570 and cols.min() < 600 and rows.min() < 300
    assert cols.max() == 639 and rows.max() == 359


def test_blur_faces_returns_a_copy_and_the_count():
    frame = textured()
    original = frame.copy()

    blurred, count = blur_faces(frame, detector=fixed_faces(FACE, (400, 50, 60, 60)))

    assert count == 2
    assert np.array_equal(frame, original)
    assert not np.array_equal(blurred, original)


def test_no_faces_leaves_the_frame_alone():
    frame = textured()

    blurred, count = blur_faces(frame, detector=fixed_faces())

    assert count == 0 and blurred is frame


@pytest.mark.skipif(HAS_HAAR, reason="this OpenCV build has Haar cascades")
def test_without_a_bundled_model_the_error_says_what_to_do():
    with pytest.raises(FaceDetectorUnavailable) as caught:
        default_face_detector()

    assert str(caught.value) == (
        f"OpenCV {cv2.__version__} has no Haar cascade support (OpenCV 5 moved it out of the "
        "main wheel); pass YuNetFaceDetector(model_path) with a YuNet ONNX model file"
    )
    with pytest.raises(FaceDetectorUnavailable):
        blur_faces(textured())


@pytest.mark.skipif(not HAS_HAAR, reason="this OpenCV build has no Haar cascades")
def test_the_bundled_haar_cascade_finds_no_face_in_a_yard():
    detector = default_face_detector()
    frame = next(iter(av.open(_clip(seconds=0.2)).decode(video=0))).to_ndarray(format="bgr24")

    assert isinstance(detector, HaarFaceDetector)
    assert blur_faces(frame, detector=detector)[1] == 0


def test_yunet_without_its_model_file_says_so(tmp_path):
    missing = tmp_path / "face_detection_yunet_2023mar.onnx"

    with pytest.raises(FaceDetectorUnavailable) as caught:
        YuNetFaceDetector(missing)

    assert str(caught.value) == (
        f"YuNet face model not found: {missing}; download face_detection_yunet_2023mar.onnx "
        "from the OpenCV model zoo and point the config at it"
    )


def test_yunet_with_a_broken_model_file_says_so(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")

    with pytest.raises(FaceDetectorUnavailable, match="^cannot load YuNet model "):
        YuNetFaceDetector(broken)


def _clip(seconds: float = 2.0) -> io.BytesIO:
    clip = io.BytesIO()
    write_clip(clip, seconds=seconds, fps=15, size=(640, 360))
    clip.seek(0)
    return clip


def _decode(source) -> list[av.VideoFrame]:
    with av.open(source) as container:
        return list(container.decode(video=0))


def _detailed_clip() -> bytes:
    """Encode a clip with fine texture, so a blur is plain to measure after compression."""
    texture = cv2.GaussianBlur(textured(), (0, 0), 1.0)
    clip = io.BytesIO()
    encode_frames(clip, (np.roll(texture, 4 * index, axis=1) for index in range(30)), fps=15)
    return clip.getvalue()


def test_clip_is_redacted_in_memory_keeping_frames_and_timestamps():
    source = _detailed_clip()
    out = io.BytesIO()

    count = blur_faces_in_clip(source, out, detector=fixed_faces(FACE))

    before, after = _decode(io.BytesIO(source)), _decode(io.BytesIO(out.getvalue()))
    assert count == len(before) == len(after) == 30
    assert [frame.pts for frame in after] == [frame.pts for frame in before]
    x, y, w, h = FACE
    for old, new in zip(before[::10], after[::10], strict=True):
        old_image, new_image = old.to_ndarray(format="bgr24"), new.to_ndarray(format="bgr24")
        box = (slice(y, y + h), slice(x, x + w))
        assert detail(new_image[box]) < detail(old_image[box]) / 20
        # Elsewhere only the re-encode differs: a few grey levels on average.
        mask = np.ones(old_image.shape[:2], dtype=bool)
        mask[y - 25 : y + h + 25, x - 20 : x + w + 20] = False
        difference = np.abs(new_image.astype(np.int16) - old_image)[mask].mean()
        assert difference < 6


def test_clip_from_a_path_to_a_path_uses_the_file_extension(tmp_path):
    source = tmp_path / "in.mp4"
    source.write_bytes(_clip(1.0).getvalue())
    target = tmp_path / "out.ts"

    count = blur_faces_in_clip(source, target, detector=fixed_faces())

    assert count == 0
    with av.open(str(target)) as container:
        assert container.format.name == "mpegts"
        assert len(list(container.decode(video=0))) == 15


def test_garbage_input_fails_before_anything_is_written():
    out = io.BytesIO()

    with pytest.raises(av.error.InvalidDataError):
        blur_faces_in_clip(b"this is not a video", out, detector=fixed_faces())

    assert out.getvalue() == b""
