"""Still pictures for the UI: the first picture of a decrypted segment, as a JPEG, in memory."""

from __future__ import annotations

import io

import av
import cv2

JPEG_QUALITY = 80


def first_frame_jpeg(segment: bytes, max_width: int = 640) -> bytes | None:
    """Decode the first picture of an MP4 segment held in memory; None if it has none."""
    try:
        with av.open(io.BytesIO(segment), mode="r") as container:
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is None:
                return None
            for frame in container.decode(stream):
                image = frame.to_ndarray(format="bgr24")
                break
            else:
                return None
    except av.error.FFmpegError:
        return None
    height, width = image.shape[:2]
    if width > max_width:
        image = cv2.resize(image, (max_width, int(height * max_width / width)),
                           interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return jpeg.tobytes() if ok else None
