"""The cameras of a running hub: one recorder per configured camera, kept in step with config.toml.

Adding or removing a camera in config.toml (by `porchlight camera add|remove` or by hand) takes
effect within a second, without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime

import av

from hub.aio import cancel_and_wait
from hub.cameras.events import record_event
from hub.cameras.live import LiveStreams
from hub.cameras.recorder import AUTH_BACKOFF_S, CameraRecorder, MotionTimeline
from hub.cameras.sources import (
    CameraState,
    CameraUnavailable,
    build_source,
    classify_open_error,
    redact_url,
)
from hub.config import CameraEntry, load_config
from hub.errors import ConfigError, PorchlightError
from hub.plugins import collect_types
from hub.timeutil import from_iso, iso, iso_second
from hub.words import plural

log = logging.getLogger(__name__)
ANALYSIS_INTERVAL_S = 0.2  # analyse at most 5 frames per second
CONFIG_POLL_S = 1.0


class CameraAnalysis:
    """Feed a camera's decoded frames to its detector; keep the motion timeline and the events."""

    def __init__(self, hub, camera: str, analyzer, timeline: MotionTimeline) -> None:
        self.hub = hub
        self.camera = camera
        self.analyzer = analyzer
        self.timeline = timeline
        self.last_ts = float("-inf")
        self.active = False
        self.started: datetime | None = None
        self.worker: AnalysisWorker | None = None

    def on_frame(self, frame: av.VideoFrame, at: datetime) -> None:
        """Analyse a frame if the 5 fps budget allows it."""
        ts = at.timestamp()
        if ts - self.last_ts < ANALYSIS_INTERVAL_S:
            return
        self.last_ts = ts
        self._apply(self.analyzer.feed(frame, ts))

    def finish(self) -> None:
        """Close any open event when the camera stops."""
        self._apply(self.analyzer.finish())

    def on_motion_state(self, moving: bool, at: datetime) -> None:
        """Follow motion reported by the camera itself (no snapshot, no zones)."""
        if moving != self.active:
            self._emit_state(moving)
        if moving and not self.active:
            self.timeline.begin(at)
            self.started = at
        elif not moving and self.active:
            self.timeline.end(at)
            row = record_event(self.hub.vault, self.camera, {
                "start": self.started.timestamp(), "end": at.timestamp(), "zones": [],
                "peak_area": 0.0, "snapshot": None})
            self.hub.emit({"kind": "motion", "camera": self.camera, "id": row["id"],
                           "start": row["start"], "end": row["end"],
                           "summary": f"motion on {self.camera} at "
                                      f"{iso_second(from_iso(row['start']))} (camera events)"})
        self.active = moving

    def _emit_state(self, active: bool) -> None:
        # Motion as it starts and stops (a "motion" event only comes once it is over): what
        # Home Assistant's motion sensor shows.
        self.hub.emit({"kind": "motion-state", "camera": self.camera, "active": active,
                       "summary": f"motion on {self.camera} "
                                  f"{'started' if active else 'stopped'}"})

    def _apply(self, update) -> None:
        if update.active != self.active:
            self._emit_state(update.active)
        if update.active and not self.active:
            self.timeline.begin(datetime.fromtimestamp(update.since, UTC))
        if update.event is not None:
            event = update.event
            start = datetime.fromtimestamp(event["start"], UTC)
            end = datetime.fromtimestamp(event["end"], UTC)
            self.timeline.end(end)
            if not self.active:
                self.timeline.add(start, end)
            row = record_event(self.hub.vault, self.camera, event)
            # The snapshot's plain JPEG stays in process: listeners pass it only to targets
            # the owner allowed (the vault keeps it sealed).
            self.hub.emit({"kind": "motion", "camera": self.camera, "id": row["id"],
                           "start": row["start"], "end": row["end"],
                           "snapshot": event.get("snapshot"),
                           "summary": f"motion on {self.camera} at "
                                      f"{iso_second(from_iso(row['start']))}"})
        elif self.active and not update.active:
            self.timeline.end(datetime.now(UTC))
        self.active = update.active


class AnalysisWorker:
    """Analyse a camera from its sub stream, or its ONVIF motion events, in a thread of its own.

    When the camera has neither, it hands the recorder the job of passing on decoded frames of
    the recorded stream, and stops.
    """

    def __init__(self, name: str, source, analysis: CameraAnalysis, recorder: CameraRecorder,
                 clock) -> None:
        self.name = name
        self.source = source
        self.analysis = analysis
        self.recorder = recorder
        self.clock = clock
        self.stop_event = recorder.stop_event
        self.thread = threading.Thread(target=self.run, name=f"analysis-{name}", daemon=True)

    def run(self) -> None:
        """Pick the cheapest analysis the camera allows and run it until the camera stops."""
        if self._events():
            return
        backoff = 1.0
        while not self.stop_event.is_set():
            try:
                container = self.source.open_analysis()
            except (PorchlightError, av.error.FFmpegError, OSError) as err:
                log.info("camera %s: analysis stream unavailable (%s)", self.name,
                         redact_url(str(err)))
                # Wrong credentials will not fix themselves: dial as rarely as the recorder does.
                if not isinstance(err, PorchlightError):
                    err = classify_open_error(err, f"camera {self.name}")
                auth = isinstance(err, CameraUnavailable) and err.state == CameraState.AUTH_FAILED
                self.stop_event.wait(AUTH_BACKOFF_S if auth else backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if container is None:
                self.recorder.on_frame = self.analysis.on_frame
                return
            backoff = 1.0
            try:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    if self.stop_event.is_set():
                        break
                    self.analysis.on_frame(frame, self.clock())
            except (av.error.FFmpegError, OSError) as err:
                log.info("camera %s: analysis stream dropped (%s)", self.name, redact_url(str(err)))
            finally:
                container.close()

    def _events(self) -> bool:
        """Follow the camera's own motion events (ONVIF); return False if it has none."""
        poll = getattr(self.source, "poll_motion", None)
        if poll is None or poll() is None:
            return False
        log.info("camera %s: using the camera's own motion events", self.name)
        while not self.stop_event.is_set():
            moving = poll()
            if moving is None:
                return False  # events went away: analyse frames instead
            self.analysis.on_motion_state(moving, self.clock())
            self.stop_event.wait(1.0)
        return True


class CameraService:
    """Start, stop and reconcile camera recorders while the hub runs."""

    def __init__(self, hub) -> None:
        self.hub = hub
        self.running: dict[str, tuple[CameraEntry, CameraRecorder, CameraAnalysis | None]] = {}
        self.task: asyncio.Task | None = None
        self._mtime: float | None = None
        self._lock = threading.Lock()
        # Set when the hub stops: a reconcile already running in its thread (a camera being
        # restarted after a settings change) starts nothing more, so the stop is not held up by
        # a camera started only to be stopped again.
        self._closing = threading.Event()
        # The web UI's live view reads each running camera's packets from here.
        self.live = hub.live = LiveStreams()

    async def __aenter__(self) -> CameraService:
        await asyncio.to_thread(self.reconcile)
        self.task = asyncio.create_task(self._watch(), name="camera-config-watch")
        return self

    async def __aexit__(self, *exc) -> None:
        self._closing.set()
        await cancel_and_wait(self.task)
        await asyncio.to_thread(self.stop_all)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(CONFIG_POLL_S)
            try:
                await asyncio.to_thread(self.reconcile)
            except ConfigError as err:
                log.error("config.toml: %s; cameras left as they were", err)

    def reconcile(self) -> None:
        """Make the running recorders match the cameras in config.toml."""
        with self._lock:
            mtime = self.hub.data.config.stat().st_mtime_ns
            if mtime == self._mtime or self._closing.is_set():
                return
            config = load_config(self.hub.data.root)
            self._mtime = mtime
            wanted = {c.name: c for c in config.cameras}
            for name in list(self.running):
                if name not in wanted or _needs_restart(self.running[name][0], wanted[name]):
                    self._stop(name)
                elif wanted[name] != self.running[name][0]:
                    self._apply_in_place(name, wanted[name])
            for name, entry in wanted.items():
                if self._closing.is_set():
                    break
                if name not in self.running:
                    try:
                        self._start(entry, config.vault.segment_seconds)
                    except (ConfigError, ValueError) as err:
                        log.error("camera %s not started: %s", name, err)
                        self._store_state(name, CameraState.STOPPED, str(err))

    def _start(self, entry: CameraEntry, segment_seconds: float) -> None:
        pm = self.hub.pm
        source = build_source(entry, collect_types(pm.hook.porchlight_camera_types(), "camera"),
                              self.hub.data.root)
        timeline = MotionTimeline()
        analysis = None
        if entry.analysis:
            settings = dict(entry.motion or {})
            kind = settings.pop("type", "motion")
            detectors = collect_types(pm.hook.porchlight_detector_types(), "detector")
            if kind not in detectors:
                raise ConfigError(f"camera {entry.name}: unknown detector {kind!r}")
            analyzer = detectors[kind](detectors[kind].Config.model_validate(settings))
            analysis = CameraAnalysis(self.hub, entry.name, analyzer, timeline)
        recorder = CameraRecorder(
            entry.name, source, self.hub.vault, mode=entry.mode, segment_seconds=segment_seconds,
            pre_roll_s=entry.pre_roll_s, post_roll_s=entry.post_roll_s, clock=self.hub.clock,
            on_state=self._store_state, motion=timeline, live=self.live.open(entry.name),
            recording=entry.recording,
        )
        self.running[entry.name] = (entry, recorder, analysis)
        recorder.start()
        if analysis is not None:
            analysis.worker = AnalysisWorker(entry.name, source, analysis, recorder, self.hub.clock)
            analysis.worker.thread.start()
        log.info("camera %s: started (%s, %s%s%s)", entry.name, entry.type, entry.mode,
                 "" if entry.analysis else ", no analysis",
                 "" if entry.recording else ", recording off")

    def _apply_in_place(self, name: str, entry: CameraEntry) -> None:
        """Turn recording on or off without a gap in the live view or the analysis."""
        _, recorder, analysis = self.running[name]
        recorder.recording = entry.recording
        self.running[name] = (entry, recorder, analysis)
        log.info("camera %s: recording %s", name, "on" if entry.recording else
                 "off (segments are not kept)")

    def _stop(self, name: str) -> None:
        entry, recorder, analysis = self.running.pop(name)
        recorder.stop_event.set()
        if analysis is not None and analysis.worker is not None:
            analysis.worker.thread.join(timeout=10)
        recorder.stop()  # joins the recorder, then closes the source both threads used
        self.live.close(name)
        if analysis is not None:
            analysis.finish()
        log.info("camera %s: stopped (%s sealed)", name, plural(recorder.sealed, "segment"))

    def stop_all(self) -> None:
        """Stop every recorder, sealing what each captured."""
        with self._lock:
            for name in list(self.running):
                self._stop(name)

    def _store_state(self, camera: str, state: CameraState, detail: str) -> None:
        now = iso(self.hub.clock())
        with self.hub.db.write_lock:
            previous = self.hub.db.execute(
                "select state, since from camera_state where camera = ?", [camera]).fetchone()
            since = previous[1] if previous and previous[0] == state.value else now
            self.hub.db["camera_state"].upsert(
                {"camera": camera, "state": state.value, "detail": detail, "since": since,
                 "updated": now}, pk="camera")
        if previous is None or previous[0] != state.value:
            self.hub.emit({"kind": "camera-state", "camera": camera, "state": state.value,
                           "summary": f"camera {camera}: {state.value} {detail}".strip()})


def _needs_restart(running: CameraEntry, wanted: CameraEntry) -> bool:
    """Tell whether a camera's new settings need it restarted (all but `recording` do)."""
    return running.model_copy(update={"recording": wanted.recording}) != wanted


def camera_states(db) -> dict[str, dict]:
    """Return the last state each camera reported."""
    return {row["camera"]: row for row in db["camera_state"].rows}


# A configured camera in one of these states records nothing: the hub is degraded. (`stopped`
# while configured is a camera that could not start, or one that is being restarted.)
DOWN_STATES = frozenset({CameraState.RECONNECTING, CameraState.AUTH_FAILED,
                         CameraState.UNREACHABLE, CameraState.STOPPED})


def camera_health(hub) -> dict:
    """Return each configured camera's state, and `degraded` if any of them is down."""
    try:
        # config.toml as it is now: cameras added or removed since the start count.
        configured = load_config(hub.data.root).cameras
    except ConfigError:
        configured = hub.config.cameras
    states = camera_states(hub.db)
    cameras = {}
    for entry in configured:
        row = states.get(entry.name, {})
        # No detail: /healthz answers without a sign-in, and details name camera addresses.
        cameras[entry.name] = {"state": row.get("state", CameraState.STARTING.value),
                               "since": row.get("since")}
    down = sorted(name for name, camera in cameras.items() if camera["state"] in DOWN_STATES)
    return {"status": "degraded" if down else "ok", "down": down, "cameras": cameras}

