"""The `rtsp` camera source: any RTSP URL over TCP, credentials kept as secret references."""

from __future__ import annotations

from pathlib import Path

import av
from pydantic import BaseModel, ConfigDict, Field

from hub.cameras.sources import with_credentials
from hub.config import SecretRef
from hub.hookspecs import hookimpl

# Seconds to open the stream, and to wait for a packet before the camera counts as dropped.
OPEN_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 5.0


class RtspConfig(BaseModel):
    """Settings of an RTSP camera; the URL carries no password."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^rtsps?://[^\s@]+$", max_length=2048)
    sub_url: str | None = Field(default=None, pattern=r"^rtsps?://[^\s@]+$", max_length=2048)
    user: str | None = Field(default=None, max_length=256)
    password: SecretRef | None = None


class RtspCamera:
    """Open an RTSP camera's main stream to record and its sub stream to analyse."""

    Config = RtspConfig

    def __init__(self, config: RtspConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir

    def _open(self, url: str) -> av.container.InputContainer:
        password = self.config.password.resolve(self.data_dir) if self.config.password else None
        # TCP interleaving: UDP loses packets on Wi-Fi and through NAT, and it breaks stream copy.
        return av.open(with_credentials(url, self.config.user, password),
                       options={"rtsp_transport": "tcp"},
                       timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S))

    def open_record(self) -> av.container.InputContainer:
        """Open the main stream."""
        return self._open(self.config.url)

    def open_analysis(self) -> av.container.InputContainer | None:
        """Open the sub stream, if the camera has one."""
        return self._open(self.config.sub_url) if self.config.sub_url else None

    def close(self) -> None:
        """Nothing to release: each stream is closed by its reader."""


@hookimpl
def porchlight_camera_types():
    """Offer the RTSP camera."""
    return {"rtsp": RtspCamera}
