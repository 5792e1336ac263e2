"""Record one camera: demux with PyAV, cut ~10 s segments at keyframes by stream copy, seal each.

The recorded stream is never decoded or re-encoded. A worker thread per camera does the blocking
demux; segment times come from the wall clock at each keyframe and never go backwards. In motion
mode closed segments wait in memory (never on disk) until motion, pre-roll and post-roll decide
whether they are sealed or dropped.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import av

from hub.cameras.live import LiveStream
from hub.cameras.rules import Interval, segment_expired, segment_needed
from hub.cameras.sources import (
    CameraSource,
    CameraState,
    CameraUnavailable,
    classify_open_error,
    redact_url,
)
from hub.errors import PorchlightError
from hub.vault.media import SEGMENT_TYPE, ClosedSegment, SegmentCutter
from hub.vault.store import Vault

log = logging.getLogger(__name__)

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
# Wrong credentials will not fix themselves: retry rarely so a camera's lockout is not triggered.
AUTH_BACKOFF_S = 60.0
# Motion is confirmed a moment after it starts (the detector needs a few frames): keep closed
# segments that long beyond the pre-roll, so the confirmation never arrives after the drop.
DETECTION_LATENCY = timedelta(seconds=5)


@dataclass
class _Pending:
    start: datetime
    end: datetime
    data: bytes


class MotionTimeline:
    """Motion intervals of one camera, shared between its analysis and its recorder."""

    def __init__(self, keep: int = 64) -> None:
        self._lock = threading.Lock()
        self._intervals: deque[Interval] = deque(maxlen=keep)

    def begin(self, at: datetime) -> None:
        """Mark the start of motion."""
        with self._lock:
            if not self._intervals or self._intervals[-1].end is not None:
                self._intervals.append(Interval(at))

    def end(self, at: datetime) -> None:
        """Mark the end of the current motion."""
        with self._lock:
            if self._intervals and self._intervals[-1].end is None:
                self._intervals[-1] = Interval(self._intervals[-1].start, at)

    def add(self, start: datetime, end: datetime) -> None:
        """Record a whole motion interval."""
        with self._lock:
            self._intervals.append(Interval(start, end))

    def snapshot(self) -> list[Interval]:
        """Return the intervals as they are now."""
        with self._lock:
            return list(self._intervals)


class CameraRecorder:
    """Record one camera into the vault until stopped, reconnecting with backoff."""

    def __init__(
        self,
        name: str,
        source: CameraSource,
        vault: Vault,
        *,
        mode: str = "continuous",
        segment_seconds: float = 10.0,
        pre_roll_s: float = 5.0,
        post_roll_s: float = 5.0,
        clock: Callable[[], datetime],
        on_state: Callable[[str, CameraState, str], None] = lambda *a: None,
        on_frame: Callable[[av.VideoFrame, datetime], None] | None = None,
        motion: MotionTimeline | None = None,
        live: LiveStream | None = None,
        recording: bool = True,
    ) -> None:
        self.name = name
        self.source = source
        self.vault = vault
        self.mode = mode
        self.segment_seconds = segment_seconds
        self.pre_roll = timedelta(seconds=pre_roll_s)
        self.post_roll = timedelta(seconds=post_roll_s)
        self.clock = clock
        self.on_state = on_state
        self.on_frame = on_frame
        self.motion = motion or MotionTimeline()
        self.live = live
        # Read by the worker thread at each segment; the camera service flips it in place.
        self.recording = recording
        self.state = CameraState.STARTING
        self.stop_event = threading.Event()
        self.last_end: datetime | None = None
        self.pending: deque[_Pending] = deque()
        self.sealed = 0
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the camera's worker thread."""
        self.thread = threading.Thread(target=self.run, name=f"camera-{self.name}", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop recording, seal what was captured, and wait for the worker thread."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)
        self.source.close()

    def _set_state(self, state: CameraState, detail: str = "") -> None:
        if state != self.state:
            log.info("camera %s: %s %s", self.name, state.value, detail)
        self.state = state
        self.on_state(self.name, state, detail)

    def run(self) -> None:
        """Connect, record, and reconnect with backoff until stopped."""
        backoff = BACKOFF_START_S
        while not self.stop_event.is_set():
            try:
                container = self._open()
            except CameraUnavailable as err:
                self._set_state(err.state, str(err))
                wait = AUTH_BACKOFF_S if err.state == CameraState.AUTH_FAILED else backoff
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                self.stop_event.wait(wait)
                continue
            self._set_state(CameraState.ONLINE)
            backoff = BACKOFF_START_S
            try:
                self._record(container)
            except (av.error.FFmpegError, OSError) as err:
                if not self.stop_event.is_set():
                    self._set_state(CameraState.RECONNECTING, redact_url(str(err)))
            finally:
                container.close()
            if not self.stop_event.is_set():
                self._set_state(CameraState.RECONNECTING, "the stream ended")
                self.stop_event.wait(backoff)
        self._flush_pending(final=True)
        self._set_state(CameraState.STOPPED)

    def _open(self) -> av.container.InputContainer:
        try:
            return self.source.open_record()
        except CameraUnavailable:
            raise
        except PorchlightError as err:
            # An unreadable password secret: the owner must fix the credentials.
            raise CameraUnavailable(f"camera {self.name}: {err}", CameraState.AUTH_FAILED) from err
        except (av.error.FFmpegError, OSError) as err:
            raise classify_open_error(err, f"camera {self.name}") from err

    def _record(self, container: av.container.InputContainer) -> None:
        video = container.streams.video[0]
        cutter = SegmentCutter(video, [], self.segment_seconds)
        starts: dict[float, datetime] = {}
        try:
            for packet in container.demux(video):
                if self.stop_event.is_set():
                    break
                now = self.clock()
                # Decode before the cutter muxes the packet: muxing rewrites its timestamps.
                # on_frame is set when this stream is also the one analysed (no sub stream).
                on_frame = self.on_frame
                if on_frame is not None and packet.dts is not None and \
                        (cutter.started or packet.is_keyframe):
                    for frame in packet.decode():
                        on_frame(frame, now)
                if self.live is not None:
                    # Before the cutter: muxing rewrites the packet's timestamps.
                    self.live.feed(packet, video)
                closed = cutter.feed(packet)
                opened = cutter.open_start
                if opened is not None and opened not in starts:
                    starts[opened] = self._monotonic(now)
                if closed is not None:
                    self._closed(closed, starts.pop(closed.start), now)
                elif packet.is_keyframe:
                    # Once a GOP, not once a packet: motion decisions change at that pace.
                    self._flush_pending()
        finally:
            if self.live is not None:
                self.live.end()  # live viewers reconnect when the camera is back
            # A drop-out never loses what was captured: close and seal the open segment.
            closed = cutter.flush()
            if closed is not None:
                self._closed(closed, starts.pop(closed.start), self.clock())

    def _monotonic(self, now: datetime) -> datetime:
        return now if self.last_end is None or now >= self.last_end else self.last_end

    def _closed(self, closed: ClosedSegment, start: datetime, now: datetime) -> None:
        end = max(now, start)
        self.last_end = end
        if self.mode == "continuous":
            self._seal(start, end, closed.data)
        else:
            self.pending.append(_Pending(start, end, closed.data))
            self._flush_pending()

    def _flush_pending(self, final: bool = False) -> None:
        if not self.pending:
            return
        motion = self.motion.snapshot()
        now = self.clock()
        while self.pending:
            item = self.pending[0]
            if segment_needed(item.start, item.end, motion, self.pre_roll, self.post_roll):
                self._seal(item.start, item.end, item.data)
            elif not (final or segment_expired(item.end, now, self.pre_roll + DETECTION_LATENCY)):
                break  # motion may still start and need it as pre-roll
            self.pending.popleft()

    def _seal(self, start: datetime, end: datetime, data: bytes) -> None:
        if not self.recording:
            return  # the owner turned recording off: the segment is dropped, never written
        try:
            self.vault.seal(self.name, start, end, SEGMENT_TYPE, data)
            self.sealed += 1
        except Exception:  # a full disk must not stop the camera; retention will make room
            log.exception("camera %s: could not seal a segment", self.name)
