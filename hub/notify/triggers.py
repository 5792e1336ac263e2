"""Turn hub events (as passed to Hub.emit) into notifications: which ones, and what they say.

Pure but for the state it keeps: the last motion notification per camera (the cooldown) and
whether each camera was last seen up or down, so a flapping state is told once per change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from hub.config import NOTIFY_TRIGGERS
from hub.notify.notification import Notification, public_event

TRIGGERS = NOTIFY_TRIGGERS
# Camera states that record nothing because something is wrong. `stopped` is left out: it is
# what every camera reports when the hub stops or the owner removes it.
DOWN = frozenset({"reconnecting", "auth failed", "unreachable"})
UP = frozenset({"online"})
MAX_TEXT = 300


class Triggers:
    """Make notifications of events, keeping the motion cooldown and camera up/down state."""

    def __init__(self, motion_cooldown_s: float, clock: Callable[[], datetime]) -> None:
        self.motion_cooldown_s = motion_cooldown_s
        self.clock = clock
        self._last_motion: dict[str, datetime] = {}
        self._camera_down: dict[str, bool] = {}

    def notification(self, event: dict) -> Notification | None:
        """Return the notification an event makes, or None if it makes none."""
        kind = event.get("kind")
        make = getattr(self, "_" + str(kind).replace("-", "_"), None)
        if make is None:
            return None
        return make(event)

    def _request(self, event: dict) -> Notification:
        agency = _short(event.get("agency") or "an agency")
        return _make("request", f"Footage request from {agency}",
                     _short(event.get("summary") or "approve or deny it"),
                     f"/requests/{event.get('id', '')}", event)

    def _alert(self, event: dict) -> Notification:
        category = _short(event.get("category") or "alert")
        where = "a LAN neighbour" if event.get("via") == "lan" else "the neighbourhood"
        return _make("alert", f"Neighbourhood alert: {category}", f"from {where}",
                     "/neighbourhood", event)

    def _announcement(self, event: dict) -> Notification:
        agency = _short(event.get("agency") or "an agency")
        return _make("alert", f"Announcement from {agency}",
                     "a verified law enforcement announcement", "/neighbourhood", event)

    def _motion(self, event: dict) -> Notification | None:
        camera = event.get("camera")
        if not camera:
            return None
        now = self.clock()
        last = self._last_motion.get(camera)
        if last is not None and (now - last).total_seconds() < self.motion_cooldown_s:
            return None
        self._last_motion[camera] = now
        return _make("motion", f"Motion on {camera}", _short(event.get("summary") or ""),
                     f"/cameras/{camera}", event, camera=camera,
                     snapshot=event.get("snapshot") or None)

    def _camera_state(self, event: dict) -> Notification | None:
        camera, state = event.get("camera"), event.get("state")
        if not camera or (state not in DOWN and state not in UP):
            return None
        down = state in DOWN
        was_down = self._camera_down.get(camera)
        self._camera_down[camera] = down
        # Told on a change only; a camera seen up first (the hub starting) is not news.
        if was_down == down or (was_down is None and not down):
            return None
        title = f"Camera {camera} is down ({state})" if down else f"Camera {camera} is back"
        return _make("camera", title, _short(event.get("summary") or ""),
                     f"/cameras/{camera}", event, camera=camera)

    def _disk(self, event: dict) -> Notification | None:
        if event.get("state") != "low":
            return None
        return _make("disk", "Disk nearly full", _short(event.get("summary") or ""),
                     "/settings", event)

    def _fork(self, event: dict) -> Notification:
        return _make("fork", "Fork alarm: the gateway showed two different logs",
                     _short(event.get("summary") or ""), "/requests", event)


def _make(trigger: str, title: str, body: str, link: str, event: dict, *,
          camera: str | None = None, snapshot: bytes | None = None) -> Notification:
    return Notification(trigger=trigger, title=_short(title), body=body, link=link,
                        camera=camera, snapshot=snapshot, event=public_event(event))


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"
