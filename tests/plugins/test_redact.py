"""Face redaction.

The pinned opencv-python-headless 4.x wheel ships the Haar frontal-face cascade, so the real
detector is tested on a real face photo that ships inside a package (scikit-image's
data.astronaut()): the face loses its detail, the rest of the picture is untouched. The
redaction itself is also checked with a detector that reports known boxes, the clip pipeline
end to end (frame count, timestamps, only the boxes change), and the clear error when the
cascade is missing (the detector pointed at a folder without it).
"""

from __future__ import annotations

import io
import shutil

import av
import cv2
import numpy as np
import pytest
from skimage import data

from hub.vault.media import join_segments
from plugins.cameras.scene import encode_frames, write_clip
from plugins.detectors.redact import (
    FaceDetectorUnavailable,
    HaarFaceDetector,
    YuNetFaceDetector,
    blur_faces,
    blur_faces_in_clip,
    blur_regions,
    default_face_detector,
    porchlight_redact_faces,
    wheel_cascade_dir,
)

HAS_HAAR = hasattr(cv2, "CascadeClassifier")
FACE = (200, 120, 80, 100)
# The astronaut's eyes, nose and mouth in data.astronaut() (x, y, width, height), found by eye,
# not by the detector under test; AROUND_FACE holds the face box with the blur's margin.
ASTRONAUT_FACE = (195, 90, 60, 60)
AROUND_FACE = (slice(30, 200), slice(140, 310))


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


def astronaut() -> np.ndarray:
    """Return scikit-image's astronaut photo (a real face) as a BGR frame."""
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def face_of(image: np.ndarray) -> np.ndarray:
    x, y, w, h = ASTRONAUT_FACE
    return image[y : y + h, x : x + w]


def away_from_face(image: np.ndarray) -> np.ndarray:
    mask = np.ones(image.shape[:2], dtype=bool)
    mask[AROUND_FACE] = False
    return mask


def test_the_real_detector_blurs_a_real_face_and_nothing_else():
    photo = astronaut()

    blurred, count = blur_faces(photo, detector=default_face_detector())

    print(f"\nface detail {detail(face_of(photo)):.0f} -> {detail(face_of(blurred)):.1f}")
    assert count == 1
    assert detail(face_of(blurred)) < detail(face_of(photo)) / 100
    away = away_from_face(photo)
    assert np.array_equal(blurred[away], photo[away])


def test_a_shared_photo_has_its_face_blurred_and_keeps_its_detail_elsewhere():
    """The hook alert photos go through: decode, detect, blur, re-encode as JPEG."""
    photo = astronaut()
    png = cv2.imencode(".png", photo)[1].tobytes()

    shared, count = porchlight_redact_faces(png, "image/png")

    image = cv2.imdecode(np.frombuffer(shared, np.uint8), cv2.IMREAD_COLOR)
    assert count == 1 and shared[:3] == b"\xff\xd8\xff"
    assert detail(face_of(image)) < detail(face_of(photo)) / 100

    def detail_away(picture: np.ndarray) -> float:
        gray = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY)
        return float(cv2.Laplacian(gray, cv2.CV_64F)[away_from_face(picture)].var())

    # The JPEG re-encode costs the rest of the picture only a little of its detail.
    assert 0.8 < detail_away(image) / detail_away(photo) < 1.2


def test_without_the_cascade_the_error_says_what_to_do(tmp_path):
    missing = tmp_path / "haarcascade_frontalface_default.xml"

    with pytest.raises(FaceDetectorUnavailable) as caught:
        default_face_detector(tmp_path)

    assert str(caught.value) == (
        f"Haar cascade file not found: {missing}; install opencv-python-headless 4.x (its "
        "wheel ships the cascades) or pass YuNetFaceDetector(model_path) with a YuNet ONNX "
        "model file"
    )
    # The same folder with the cascade copied in: the folder is what made the difference.
    shutil.copy(wheel_cascade_dir() / missing.name, missing)
    assert len(default_face_detector(tmp_path)(astronaut())) == 1


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


def test_a_clip_with_a_gap_keeps_its_frames_and_timestamps():
    """Footage recorded in pieces: 1 s of frames, a 1 s gap, 1 s more (an event's clip)."""
    first, second = _clip(1.0).getvalue(), _clip(1.0).getvalue()
    clip = io.BytesIO()
    join_segments([("a", 0, lambda: first), ("b", 2, lambda: second)], clip)
    before = _decode(io.BytesIO(clip.getvalue()))
    assert before[15].pts * before[15].time_base == 2  # the gap is there

    out = io.BytesIO()
    blur_faces_in_clip(clip.getvalue(), out, detector=fixed_faces(FACE))

    after = _decode(io.BytesIO(out.getvalue()))
    assert len(after) == len(before) == 30
    assert [f.pts * f.time_base for f in after] == [f.pts * f.time_base for f in before]


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
