"""Which hub events make a notification, what it says, and the disk's crossings (pure rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.notify.triggers import Triggers
from hub.vault.disk import DiskThresholds, DiskWatch, nearly_full

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_a_pending_request_links_to_its_page():
    n = Triggers(300, Clock()).notification(
        {"kind": "request", "id": "abc123", "agency": "Metro PD",
         "summary": "Metro PD asks for footage (case 7); approve or deny it"})
    assert (n.trigger, n.title, n.link) == ("request", "Footage request from Metro PD",
                                            "/requests/abc123")
    assert n.body == "Metro PD asks for footage (case 7); approve or deny it"


def test_alerts_and_verified_announcements_are_the_alert_trigger():
    triggers = Triggers(300, Clock())
    alert = triggers.notification({"kind": "alert", "via": "lan", "category": "theft"})
    announcement = triggers.notification({"kind": "announcement", "agency": "Metro PD"})
    assert (alert.trigger, alert.title, alert.body, alert.link) == (
        "alert", "Neighbourhood alert: theft", "from a LAN neighbour", "/neighbourhood")
    assert (announcement.trigger, announcement.title) == ("alert", "Announcement from Metro PD")


def test_motion_has_a_cooldown_per_camera():
    clock = Clock()
    triggers = Triggers(300, clock)

    def motion(camera):
        return triggers.notification({"kind": "motion", "camera": camera, "snapshot": b"jpg",
                                      "lat": 51.5})

    first = motion("yard")
    assert first.camera == "yard" and first.snapshot == b"jpg" and first.link == "/cameras/yard"
    assert "snapshot" not in first.event and "lat" not in first.event
    clock.now += timedelta(seconds=299)
    assert motion("yard") is None
    assert motion("porch") is not None  # another camera has its own cooldown
    clock.now += timedelta(seconds=1)
    assert motion("yard") is not None


def test_a_camera_is_told_down_and_back_once_per_change():
    triggers = Triggers(300, Clock())

    def state(value):
        n = triggers.notification({"kind": "camera-state", "camera": "yard", "state": value})
        return n and n.title

    assert state("starting") is None
    assert state("online") is None  # up at start is not news
    assert state("reconnecting") == "Camera yard is down (reconnecting)"
    assert state("unreachable") is None  # still down
    assert state("online") == "Camera yard is back"
    assert state("stopped") is None  # the hub stopping, or the owner removing it


def test_the_disk_and_the_fork_alarm():
    triggers = Triggers(300, Clock())
    low = triggers.notification({"kind": "disk", "state": "low", "summary": "disk nearly full"})
    assert (low.trigger, low.title, low.link) == ("disk", "Disk nearly full", "/settings")
    assert triggers.notification({"kind": "disk", "state": "ok"}) is None
    fork = triggers.notification({"kind": "fork", "gateway": "kid", "peer": "p",
                                  "summary": "the gateway showed two logs"})
    assert (fork.trigger, fork.link) == ("fork", "/requests")
    assert triggers.notification({"kind": "repair"}) is None


def test_the_disk_watch_tells_each_crossing_once():
    events = []
    watch = DiskWatch(DiskThresholds(10.0, 90.0, max_bytes=1000), events.append)
    total = 100 * 10**9
    assert watch.check(total, 50 * 10**9, 0) is None
    assert watch.check(total, 9 * 10**9, 0)["state"] == "low"
    assert watch.check(total, 8 * 10**9, 0) is None  # still low: not told again
    assert watch.check(total, 20 * 10**9, 0)["state"] == "ok"
    assert watch.check(total, 20 * 10**9, 900)["state"] == "low"  # the quota this time
    assert [e["state"] for e in events] == ["low", "ok", "low"]
    assert events[0]["summary"] == "disk nearly full: 9.0 GB free of 100.0 GB (9.0%, under 10%)"
    assert events[2]["summary"] == ("disk nearly full: the vault holds 0.0 GB of its 0.0 GB "
                                    "quota (90%)")
    assert nearly_full(0, 0, 0, DiskThresholds(10.0, 90.0, None)) is None
