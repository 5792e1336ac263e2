"""The `rtsp` camera source: any RTSP URL over TCP, credentials kept as secret references."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import av
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.cameras.sources import with_credentials
from hub.config import SecretRef
from hub.hookspecs import hookimpl

# Seconds to open the stream, and to wait for a packet before the camera counts as dropped.
OPEN_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 5.0


class RtspConfig(BaseModel):
    """Settings of an RTSP camera; the URL carries no password."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(max_length=2048)
    sub_url: str | None = Field(default=None, max_length=2048)
    user: str | None = Field(default=None, max_length=256)
    password: SecretRef | None = None

    @field_validator("url", "sub_url")
    @classmethod
    def _camera_url(cls, url: str | None) -> str | None:
        if url is not None:
            check_camera_url(url)
        return url


_EXAMPLE = "rtsp://192.168.1.20:554/stream1"


def check_camera_url(url: str) -> None:
    """Refuse a URL that is not rtsp:// or rtsps://, with a host, and no credentials in it."""
    parts = urlsplit(url)
    # Say what a camera URL looks like instead of echoing a regular expression; never echo
    # the URL itself, in case it holds a password.
    if parts.scheme.lower() not in ("rtsp", "rtsps"):
        raise ValueError(f"a camera URL starts with rtsp:// or rtsps:// (example: {_EXAMPLE})")
    if "@" in parts.netloc:
        raise ValueError("a camera URL in config.toml holds no user or password: set user and "
                         "password instead (`porchlight camera add` moves them for you)")
    try:
        port = parts.port  # urlsplit checks the port only when asked
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"the port in a camera URL is a number from 1 to 65535 (example: "
                         f"{_EXAMPLE})")
    if not parts.hostname or any(c.isspace() for c in url):
        raise ValueError(f"a camera URL names the camera's host, with no spaces (example: "
                         f"{_EXAMPLE})")


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
