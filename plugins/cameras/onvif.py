"""The `onvif` camera source: resolve the streams through ONVIF, then record them as RTSP.

open_record() runs in the camera's worker thread and may block, so the ONVIF conversation runs
there on a private event loop (never the hub's). The resolved URIs are cached until an RTSP
open fails, when the next reconnect asks the device again (it may have rebooted with new ones).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import av
from pydantic import BaseModel, ConfigDict, Field

from hub.cameras.sources import CameraState, CameraUnavailable
from hub.config import SecretRef
from hub.errors import ConfigError
from hub.hookspecs import hookimpl
from plugins.cameras.onvif_client import (
    ONVIF_TIMEOUT_S,
    MotionSubscription,
    ResolvedDevice,
    classify_onvif_error,
    resolve_device,
)
from plugins.cameras.rtsp import RtspCamera, RtspConfig

log = logging.getLogger(__name__)
# After events fail (subscription lost, device gone), wait this long before subscribing again.
EVENTS_RETRY_S = 30.0


class OnvifConfig(BaseModel):
    """Settings of an ONVIF camera; the password is a secret reference."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, max_length=253, pattern=r"^[^\s/@]+$")
    port: int = Field(default=80, ge=1, le=65535)
    user: str | None = Field(default=None, max_length=256)
    password: SecretRef | None = None
    # A profile token, or its 0-based place in the device's list; default: the first H.264 one.
    profile: int | str | None = None
    use_onvif_events: bool = False


class _PrivateLoop:
    """An event loop owned by one camera, run by whichever thread holds the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runner: asyncio.Runner | None = None

    def run(self, coro):
        """Run a coroutine to completion on the private loop."""
        with self._lock:
            if self._runner is None:
                # loop_factory: never install this loop as the calling thread's current loop.
                self._runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
            return self._runner.run(coro)

    def close(self) -> None:
        """Close the loop and its default executor."""
        with self._lock:
            if self._runner is not None:
                self._runner.close()
                self._runner = None


class OnvifCamera:
    """Resolve an ONVIF camera's stream URIs, then open them exactly as an RTSP camera."""

    Config = OnvifConfig

    def __init__(self, config: OnvifConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.resolved: ResolvedDevice | None = None
        self._rtsp: RtspCamera | None = None
        self._loop = _PrivateLoop()
        self._events: MotionSubscription | None = None
        self._events_offered: bool | None = None
        self._events_retry_at = 0.0
        self._motion = False

    def _password(self) -> str | None:
        if self.config.password is None:
            return None
        try:
            return self.config.password.resolve(self.data_dir)
        except ConfigError as err:
            # A missing secret is the owner's to fix, like a wrong one; retried rarely.
            raise CameraUnavailable(f"{err}; fix the camera's password reference",
                                    CameraState.AUTH_FAILED) from err

    def resolve(self) -> ResolvedDevice:
        """Ask the device for its profiles and stream URIs (blocking; cached until a failure)."""
        if self.resolved is not None:
            return self.resolved
        host, port = self.config.host, self.config.port
        try:
            resolved = self._loop.run(resolve_device(
                host, port, self.config.user, self._password(), self.config.profile))
            rtsp = RtspCamera(RtspConfig(url=resolved.record_uri, sub_url=resolved.analysis_uri,
                                         user=self.config.user, password=self.config.password),
                              self.data_dir)
        except CameraUnavailable:
            raise
        except Exception as err:  # firmware varies: a bad reply must not kill the worker thread
            raise classify_onvif_error(err, host, port) from err
        info = resolved.info
        log.info("ONVIF %s:%s: %s %s (firmware %s), %d profiles; recording %s%s", host, port,
                 info.manufacturer or "?", info.model or "?", info.firmware or "?",
                 len(resolved.profiles), resolved.record.token,
                 f", analysing {resolved.analysis.token}" if resolved.analysis else "")
        self.resolved, self._rtsp = resolved, rtsp
        return resolved

    def describe(self) -> dict:
        """Return the device's identity, profiles and chosen streams (blocking)."""
        return self.resolve().describe()

    def open_record(self) -> av.container.InputContainer:
        """Open the recording profile's stream."""
        self.resolve()
        try:
            return self._rtsp.open_record()
        except (av.error.FFmpegError, OSError):
            self.resolved = None
            raise

    def open_analysis(self) -> av.container.InputContainer | None:
        """Open the smaller profile's stream, if the device has one."""
        self.resolve()
        return self._rtsp.open_analysis()

    def poll_motion(self) -> bool | None:
        """Return whether the device reports motion, or None when its events are not available."""
        if not self.config.use_onvif_events or self._events_offered is False:
            return None
        if self._events is None and time.monotonic() < self._events_retry_at:
            return None
        try:
            return self._loop.run(self._pull())
        except Exception as err:  # events are optional: the hub falls back to analysing frames
            reason = err if isinstance(err, CameraUnavailable) else classify_onvif_error(
                err, self.config.host, self.config.port)
            log.warning("ONVIF %s:%s: motion events failed (%s); analysing frames instead",
                        self.config.host, self.config.port, reason)
            self._events_retry_at = time.monotonic() + EVENTS_RETRY_S
            self._loop.run(self._drop_events())
            return None

    async def _pull(self) -> bool | None:
        if self._events is not None and self._events.lost:
            await self._drop_events()
        if self._events is None:
            self._events = await MotionSubscription.start(
                self.config.host, self.config.port, self.config.user, self._password())
            if self._events is None:
                self._events_offered = False
                log.info("ONVIF %s:%s: the device offers no PullPoint events; analysing frames",
                         self.config.host, self.config.port)
                return None
            self._events_offered = True
            self._motion = False
        state = await self._events.pull()
        if state is not None:
            self._motion = state
        return self._motion

    async def _drop_events(self) -> None:
        events, self._events = self._events, None
        if events is not None:
            try:
                async with asyncio.timeout(ONVIF_TIMEOUT_S):
                    await events.close()
            except Exception as err:  # the device may be gone already
                log.debug("ONVIF %s:%s: unsubscribe failed: %s", self.config.host,
                          self.config.port, type(err).__name__)

    def close(self) -> None:
        """Unsubscribe from events and close the private event loop."""
        if self._events is not None:
            try:
                self._loop.run(self._drop_events())
            except RuntimeError:
                pass  # the loop is already closed
        self._loop.close()


@hookimpl
def porchlight_camera_types():
    """Offer the ONVIF camera."""
    return {"onvif": OnvifCamera}
