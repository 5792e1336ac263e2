"""Face redaction: find faces with OpenCV and blur them beyond recognition.

Two detectors are supported. `HaarFaceDetector` uses the frontal-face Haar cascade that
OpenCV 4.x wheels ship in `cv2.data.haarcascades`; OpenCV 5 dropped both the cascade files
and `cv2.CascadeClassifier` from the main wheel. `YuNetFaceDetector` uses OpenCV's
`FaceDetectorYN`, which is in every recent wheel but needs the YuNet ONNX model file
(face_detection_yunet_2023mar.onnx, about 230 KB) that no wheel ships: the owner points the
config at it. `default_face_detector` picks what this OpenCV build can do, or says what to do.

Clips are redacted in memory (bytes or file objects in, a file object out) so footage never
touches the disk unencrypted; a path is accepted for callers that already decided to export.
"""

from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Protocol

import av
import cv2
import numpy as np

from hub.hookspecs import hookimpl

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
"""A box in pixels: x, y, width, height."""

HAAR_FRONTAL_FACE = "haarcascade_frontalface_default.xml"
# A face shrunk to this many blocks across keeps its colours and nothing that identifies it.
_MOSAIC_BLOCKS = 6


class FaceDetectorUnavailable(RuntimeError):
    """No face detector can run with this OpenCV build and configuration."""


class FaceDetector(Protocol):
    """Anything that finds faces in a BGR frame."""

    def __call__(self, frame: np.ndarray) -> Sequence[Box]:
        """Return the faces found in a BGR frame as pixel boxes."""
        ...


class HaarFaceDetector:
    """Find frontal faces with OpenCV's Haar cascade (OpenCV 4.x wheels)."""

    def __init__(
        self,
        cascade_path: str | Path | None = None,
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: tuple[int, int] = (24, 24),
    ) -> None:
        if not hasattr(cv2, "CascadeClassifier"):
            raise FaceDetectorUnavailable(
                f"OpenCV {cv2.__version__} has no Haar cascade support (OpenCV 5 moved it out "
                "of the main wheel); pass YuNetFaceDetector(model_path) with a YuNet ONNX "
                "model file"
            )
        if cascade_path is None:
            cascade_path = wheel_cascade_dir() / HAAR_FRONTAL_FACE
        if not os.path.isfile(cascade_path):
            raise FaceDetectorUnavailable(
                f"Haar cascade file not found: {cascade_path}; install opencv-python-headless "
                "4.x (its wheel ships the cascades) or pass YuNetFaceDetector(model_path) with "
                "a YuNet ONNX model file"
            )
        self._cascade = cv2.CascadeClassifier(str(cascade_path))
        if self._cascade.empty():
            raise FaceDetectorUnavailable(f"Haar cascade file is not valid: {cascade_path}")
        self._scale_factor = scale_factor
        self._min_neighbors = min_neighbors
        self._min_size = min_size

    def __call__(self, frame: np.ndarray) -> list[Box]:
        """Return the frontal faces in a BGR frame."""
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        gray = cv2.equalizeHist(gray)
        found = self._cascade.detectMultiScale(
            gray, scaleFactor=self._scale_factor, minNeighbors=self._min_neighbors,
            minSize=self._min_size,
        )
        return [tuple(int(v) for v in box) for box in found]


class YuNetFaceDetector:
    """Find faces with OpenCV's FaceDetectorYN and a YuNet ONNX model file."""

    def __init__(self, model_path: str | Path, *, score_threshold: float = 0.6) -> None:
        if not os.path.isfile(model_path):
            raise FaceDetectorUnavailable(
                f"YuNet face model not found: {model_path}; download "
                "face_detection_yunet_2023mar.onnx from the OpenCV model zoo and point the "
                "config at it"
            )
        try:
            self._detector = cv2.FaceDetectorYN.create(
                str(model_path), "", (320, 320), score_threshold
            )
        except cv2.error as err:
            raise FaceDetectorUnavailable(f"cannot load YuNet model {model_path}: {err}") from err
        self._input_size: tuple[int, int] | None = None

    def __call__(self, frame: np.ndarray) -> list[Box]:
        """Return the faces in a BGR frame."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        size = (frame.shape[1], frame.shape[0])
        if size != self._input_size:
            self._detector.setInputSize(size)
            self._input_size = size
        _, faces = self._detector.detect(frame)
        if faces is None:
            return []
        return [tuple(int(round(v)) for v in face[:4]) for face in faces]


def wheel_cascade_dir() -> Path:
    """Return the folder where the OpenCV wheel keeps its Haar cascades."""
    return Path(getattr(getattr(cv2, "data", None), "haarcascades", ""))


def default_face_detector(cascade_dir: str | Path | None = None) -> FaceDetector:
    """Return the Haar face detector from cascade_dir (default: the OpenCV wheel's own)."""
    # Only the Haar cascade ever came inside the wheel; YuNet always needs a model path.
    folder = wheel_cascade_dir() if cascade_dir is None else Path(cascade_dir)
    return HaarFaceDetector(folder / HAAR_FRONTAL_FACE)


def blur_regions(frame: np.ndarray, boxes: Sequence[Box], *, margin: float = 0.2) -> np.ndarray:
    """Blur each box (grown by `margin` of its size) in place and return the frame."""
    height, width = frame.shape[:2]
    for x, y, w, h in boxes:
        grow_x, grow_y = int(round(w * margin)), int(round(h * margin))
        x0, y0 = max(0, x - grow_x), max(0, y - grow_y)
        x1, y1 = min(width, x + w + grow_x), min(height, y + h + grow_y)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        region = frame[y0:y1, x0:x1]
        # Mosaic, then smooth: a Gaussian blur alone can be partly undone by deconvolution,
        # while a few blocks across hold too little information to recover a face from.
        blocks_x = min(_MOSAIC_BLOCKS, x1 - x0)
        blocks_y = max(1, min(y1 - y0, round(blocks_x * (y1 - y0) / (x1 - x0))))
        tiny = cv2.resize(region, (blocks_x, blocks_y), interpolation=cv2.INTER_AREA)
        region[...] = cv2.resize(tiny, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return frame


def blur_faces(
    frame: np.ndarray, *, detector: FaceDetector | None = None
) -> tuple[np.ndarray, int]:
    """Return a copy of a BGR frame with its faces blurred, and how many were blurred."""
    detector = detector or _default_detector()
    boxes = list(detector(frame))
    if not boxes:
        return frame, 0
    return blur_regions(frame.copy(), boxes), len(boxes)


def blur_faces_in_clip(
    source: bytes | str | Path | BinaryIO,
    out: str | Path | BinaryIO,
    *,
    detector: FaceDetector | None = None,
    container: str | None = None,
    crf: int = 20,
) -> int:
    """Re-encode a clip's video with every face blurred; return how many faces were blurred.

    The output keeps the input's frame count and timestamps. Audio is not kept: a redacted
    export is about the picture, and voices would need their own redaction.
    """
    detector = detector or _default_detector()
    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(bytes(source))
    elif isinstance(source, Path):
        source = str(source)
    if isinstance(out, str | Path):
        target: str | BinaryIO = str(out)
    else:
        target = out
        # A file object has no name to guess the container from.
        container = container or "mp4"
    total = 0
    with av.open(source, mode="r") as inp:
        if not inp.streams.video:
            raise ValueError("the clip has no video stream")
        video = inp.streams.video[0]
        rate = video.average_rate or video.guessed_rate or Fraction(15)
        with av.open(target, mode="w", format=container) as output:
            stream = output.add_stream("libx264", rate=rate)
            # Encode in the source's own time base: in 1/rate, a clip with a gap (footage
            # recorded in pieces) has an average rate below the real one, and two frames
            # would round onto one timestamp, which the encoder refuses.
            stream.codec_context.time_base = video.time_base
            stream.width = video.codec_context.width
            stream.height = video.codec_context.height
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": "veryfast", "crf": str(crf)}
            for index, frame in enumerate(inp.decode(video)):
                image, count = blur_faces(frame.to_ndarray(format="bgr24"), detector=detector)
                total += count
                redacted = av.VideoFrame.from_ndarray(image, format="bgr24")
                if frame.pts is not None and frame.time_base is not None:
                    redacted.pts, redacted.time_base = frame.pts, frame.time_base
                else:
                    redacted.pts, redacted.time_base = index, 1 / rate
                for packet in stream.encode(redacted):
                    output.mux(packet)
            for packet in stream.encode(None):
                output.mux(packet)
    log.debug("blurred %s faces in a clip", total)
    return total


@functools.cache
def _default_detector() -> FaceDetector:
    # Loading a cascade takes tens of milliseconds: do it once per process, not per frame.
    return default_face_detector()


@hookimpl
def porchlight_redact_faces(data: bytes, media_type: str) -> tuple[bytes, int] | None:
    """Blur faces in a photo (re-encoded as JPEG, which also drops EXIF and GPS tags) or a clip."""
    if media_type in ("image/jpeg", "image/png"):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError("the photo cannot be decoded")
        image, count = blur_faces(image)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise ValueError("the photo cannot be encoded")
        return encoded.tobytes(), count
    if media_type == "video/mp4":
        out = io.BytesIO()
        count = blur_faces_in_clip(data, out)
        return out.getvalue(), count
    return None
