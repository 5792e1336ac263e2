"""The dispatcher against real webhook receivers on loopback: retries with backoff, failing
targets that block no one, per-person switches, and snapshots only where allowed."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from hub.errors import ConfigError
from hub.notify import prefs
from hub.notify.dispatch import NotifyService, RetryPolicy
from hub.service import Hub
from tests.notify_peers import Receiver, closed_port

SECRET = "s3cret-s3cret-s3cret-0123456789"
FAST = RetryPolicy(attempts=4, backoff_s=0.2, max_backoff_s=5.0, timeout_s=1.0)


def _webhook(name: str, url: str, extra: str = "") -> str:
    return (f'\n[[notifiers]]\ntype = "webhook"\nname = "{name}"\nurl = "{url}"\n'
            f'secret = {{ env = "HOOK_SECRET" }}\n{extra}')


def _configure(root, *tables: str, notify: str = "") -> None:
    config = root / "config.toml"
    config.write_text(config.read_text() + "\n[notify]\nmotion_cooldown_s = 0\n" + notify
                      + "".join(tables))


@pytest.fixture(autouse=True)
def hook_secret(monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)


@pytest.fixture
async def receivers():
    made: list[Receiver] = []

    async def make(behave=None) -> Receiver:
        made.append(await Receiver(SECRET.encode(), behave).start())
        return made[-1]

    yield make
    for receiver in made:
        await receiver.stop()


def _request(n: int = 1) -> dict:
    return {"kind": "request", "id": f"req{n}", "agency": "Metro PD",
            "summary": f"Metro PD asks for footage (case {n}); approve or deny it"}


def _motion(camera: str = "yard", snapshot: bytes | None = b"\xff\xd8jpeg") -> dict:
    return {"kind": "motion", "camera": camera, "id": "ev1", "snapshot": snapshot,
            "summary": f"motion on {camera}"}


async def test_a_failing_target_is_retried_with_growing_backoff_then_delivered(hub_dir, receivers):
    flaky = await receivers(lambda n: 500 if n <= 2 else 200)
    _configure(hub_dir, _webhook("flaky", flaky.url))
    hub = Hub(hub_dir)
    try:
        async with NotifyService(hub, policy=FAST) as service:
            hub.emit(_request())
            hits = await flaky.wait_for(3)
            while service.targets[0].sent < 1:
                await asyncio.sleep(0.05)
    finally:
        hub.close()
    assert [h.status for h in hits] == [500, 500, 200]
    assert all(h.accepted for h in hits)
    # One notification, the same id on each attempt (a receiver can drop repeats).
    assert len({h.json()["id"] for h in hits}) == 1
    gaps = [b.at - a.at for a, b in zip(hits, hits[1:], strict=False)]
    # Each wait is at least its backoff, and the second doubles the first (sleep never
    # returns early, so these lower bounds hold on any machine).
    assert gaps[0] >= FAST.delay(1) * 0.95 and gaps[1] >= FAST.delay(2) * 0.95, gaps


async def test_attempts_are_capped_and_the_streak_is_logged_once(hub_dir, receivers, caplog):
    broken = await receivers(lambda n: 500)
    _configure(hub_dir, _webhook("broken", broken.url))
    hub = Hub(hub_dir)
    caplog.set_level(logging.INFO, logger="hub.notify.dispatch")
    try:
        async with NotifyService(hub, policy=FAST) as service:
            hub.emit(_request())
            while service.targets[0].given_up < 1:
                await asyncio.sleep(0.05)
    finally:
        hub.close()
    assert len(broken.hits) == FAST.attempts
    failures = [r.getMessage() for r in caplog.records if "sending failed" in r.getMessage()]
    assert failures == ["notifier broken: sending failed (the receiver answered HTTP 500); "
                        "trying again with backoff"]
    assert SECRET not in caplog.text and broken.url not in caplog.text


async def test_down_slow_and_500_targets_block_neither_the_source_nor_the_good_one(
        hub_dir, receivers):
    good = await receivers()
    hanging = await receivers(lambda n: "hang")
    erroring = await receivers(lambda n: 500)
    down = f"http://127.0.0.1:{closed_port()}/hook"
    _configure(hub_dir, _webhook("good", good.url), _webhook("hanging", hanging.url),
               _webhook("erroring", erroring.url), _webhook("down", down))
    hub = Hub(hub_dir)
    try:
        async with NotifyService(hub, policy=FAST) as service:
            # Emitted from a camera-like thread: emit returns at once whatever the targets do.
            emitted = []

            def camera_thread():
                for n in range(5):
                    start = time.monotonic()
                    hub.emit(_request(n))
                    emitted.append(time.monotonic() - start)

            thread = threading.Thread(target=camera_thread)
            thread.start()
            await asyncio.to_thread(thread.join)
            await good.wait_for(5)
            by_name = {t.entry.name: t for t in service.targets}
            # All five reached the good target while every bad one is still on its first.
            assert by_name["hanging"].given_up == 0 and by_name["erroring"].given_up == 0
            await hanging.wait_for(2)  # the first send timed out and was tried again
    finally:
        hub.close()
    print(f"\nemit with three failing targets: at most {max(emitted) * 1000:.2f} ms per event")
    assert [b["event"]["id"] for b in good.accepted] == [f"req{n}" for n in range(5)]
    # Handing an event over costs no network time (well under the 1 s timeout of a target).
    assert max(emitted) < FAST.timeout_s / 4, emitted


async def test_a_trigger_switched_off_for_a_person_sends_nothing_to_their_targets(
        hub_dir, receivers):
    owners, viewers = await receivers(), await receivers()
    _configure(hub_dir, _webhook("owners", owners.url, "lan = true\n"),
               _webhook("viewers", viewers.url, 'person = "sam"\nlan = true\n'))
    hub = Hub(hub_dir)
    try:
        hub.people.add("sam", "viewer", "sam's long passphrase here")
        hub.people.share("sam", "yard")
        prefs.set_prefs(hub.db, "owner", "owner", {"request", "alert", "camera", "disk", "fork"})
        async with NotifyService(hub, policy=FAST):
            hub.emit(_motion("yard"))  # owner: motion off; sam: on, and shared
            hub.emit(_motion("garage"))  # sam: not shared with them
            hub.emit(_request())  # sam: a viewer never hears of agency requests
            hub.emit({"kind": "alert", "via": "gateway", "category": "theft", "id": "a1"})
            await owners.wait_for(2)
            await viewers.wait_for(2)
    finally:
        hub.close()
    # Each target's queue is in order, so anything switched off would have come first.
    assert [(b["trigger"], b["camera"]) for b in owners.accepted] == [
        ("request", None), ("alert", None)]
    assert [(b["trigger"], b["camera"]) for b in viewers.accepted] == [
        ("motion", "yard"), ("alert", None)]


async def test_snapshots_go_to_lan_targets_and_to_internet_ones_only_where_allowed(
        hub_dir, receivers):
    lan, internet, allowed = await receivers(), await receivers(), await receivers()
    _configure(hub_dir, _webhook("lan", lan.url, "lan = true\n"),
               _webhook("internet", internet.url),
               _webhook("allowed", allowed.url, 'snapshots = ["yard"]\n'),
               notify='public_url = "https://hub.example.lan:8765"\n')
    hub = Hub(hub_dir)
    try:
        async with NotifyService(hub, policy=FAST):
            hub.emit(_motion("yard"))
            hub.emit(_motion("porch"))
            for receiver in (lan, internet, allowed):
                await receiver.wait_for(2)
    finally:
        hub.close()
    snapshot = "/9hqcGVn"  # base64 of the JPEG bytes
    assert [b.get("snapshot") for b in lan.accepted] == [snapshot, snapshot]
    assert [b.get("snapshot") for b in internet.accepted] == [None, None]
    assert [b.get("snapshot") for b in allowed.accepted] == [snapshot, None]
    assert "snapshot" not in lan.accepted[0]["event"]
    assert lan.accepted[0]["url"] == "https://hub.example.lan:8765/cameras/yard"
    assert lan.accepted[0]["link"] == "/cameras/yard"


async def test_an_unknown_notifier_type_stops_the_start_with_its_name(hub_dir):
    _configure(hub_dir, '\n[[notifiers]]\ntype = "carrier-pigeon"\nname = "coo"\n')
    hub = Hub(hub_dir)
    try:
        with pytest.raises(ConfigError) as caught:
            async with NotifyService(hub):
                pass
    finally:
        hub.close()
    assert str(caught.value).startswith(
        "notifiers.coo: no notifier type 'carrier-pigeon' (installed: apprise, ")
