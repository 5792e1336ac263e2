"""The `synthetic` camera source: a generated scene encoded live to H.264 in process.

It needs no hardware or files, so `porchlight demo` and the tests record a real H.264 stream
through the same recorder as an RTSP camera. Frames are paced to the wall clock and written as
MPEG-TS into a pipe that the recorder demuxes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.hookspecs import hookimpl
from plugins.cameras.scene import (
    SCENARIOS,
    encode_frames,
    scenario_frames,
    scene_frames,
    stamp_time,
    write_clip,
)

log = logging.getLogger(__name__)


class SyntheticConfig(BaseModel):
    """Settings of a synthetic camera."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fps: int = Field(default=15, ge=1, le=60)
    width: int = Field(default=640, ge=64, le=3840)
    height: int = Field(default=360, ge=64, le=2160)
    gop_seconds: float = Field(default=1.0, gt=0, le=10)
    seed: int = 0
    scenario: str | None = Field(default=None, description="a ground-truth scenario, looped")
    loop_seconds: float = Field(default=60.0, ge=1.0, le=3600.0, description="scenario length")
    stamp: bool = Field(default=False, description="draw each frame's capture time (ms) on top")

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, name: str | None) -> str | None:
        if name is not None and name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
        return name


class SyntheticCamera:
    """A camera whose stream is generated and encoded live."""

    Config = SyntheticConfig
    write_clip = staticmethod(write_clip)

    def __init__(self, config: SyntheticConfig, data_dir: Path | None = None) -> None:
        if config.scenario is not None and config.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {config.scenario!r}")
        self.config = config
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _frames(self) -> Iterator[np.ndarray]:
        config = self.config
        size = (config.width, config.height)
        interval = 1.0 / config.fps
        next_at = time.monotonic()
        while not self._stop.is_set():
            if config.scenario:
                frames = (f for f, _ in scenario_frames(
                    config.scenario, seconds=config.loop_seconds, fps=config.fps, size=size,
                    seed=config.seed))
            else:
                frames = scene_frames(600.0, config.fps, size, config.seed)
            for frame in frames:
                if self._stop.is_set():
                    return
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at += interval
                if config.stamp:
                    # The capture time, read back from the picture to measure live latency.
                    frame = frame.copy()
                    stamp_time(frame, int(time.time() * 1000))
                yield frame

    def open_record(self) -> av.container.InputContainer:
        """Start the live encoder and open its MPEG-TS output."""
        read_fd, write_fd = os.pipe()
        writer = os.fdopen(write_fd, "wb", buffering=0)

        def encode() -> None:
            try:
                encode_frames(writer, self._frames(), fps=self.config.fps,
                              gop_seconds=self.config.gop_seconds, container="mpegts")
            except (BrokenPipeError, av.error.FFmpegError, OSError, ValueError) as err:
                log.debug("synthetic encoder stopped: %s", err)
            finally:
                try:
                    writer.close()
                except OSError:
                    pass

        thread = threading.Thread(target=encode, name="synthetic-encoder", daemon=True)
        thread.start()
        self._threads.append(thread)
        return av.open(os.fdopen(read_fd, "rb", buffering=0), mode="r", format="mpegts")

    def open_analysis(self) -> None:
        """Analyse the recorded stream itself (a synthetic camera has no sub stream)."""
        return None

    def close(self) -> None:
        """Stop the encoder threads."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()


@hookimpl
def porchlight_camera_types():
    """Offer the synthetic camera."""
    return {"synthetic": SyntheticCamera}
