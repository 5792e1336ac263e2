"""The `webpush` notifier against a real RFC 8030 push service on loopback (tests/push_service.py)
that checks the VAPID header and decrypts each payload with the subscription's own keys, as a
browser would; the hub and its dispatcher are real (hub/notify/dispatch.py), in process."""

from __future__ import annotations

import asyncio
import json

import pytest

from hub.config import NotifierEntry
from hub.errors import ConfigError
from hub.notify import Notification
from hub.notify.dispatch import NotifyService, build_notifier
from hub.notify.push_subscriptions import PushSubscriptions
from hub.notify.vapid import load_or_create_vapid_key
from hub.service import Hub
from plugins.notifiers.webpush import WebPushNotifier, payload_of
from tests.push_service import PushService

VIEWER, VIEWER_PASS = "sam", "sam-passphrase-long"
CONFIG = """
[notify]
attempts = 20
backoff_s = 0.05
max_backoff_s = 1.0
timeout_s = 20

[[notifiers]]
type = "webpush"
name = "owner-browsers"
contact = "mailto:owner@example.org"

[[notifiers]]
type = "webpush"
name = "sam-browsers"
person = "sam"
"""
REQUEST = {"kind": "request", "id": "req-7", "agency": "Metro Police, Precinct 9",
           "summary": "Metro Police, Precinct 9 asks for footage (case 24-1187); approve or deny it",
           "lat": 51.5007, "lon": -0.1246, "token": "eyJ.secret.jws"}
ALERT = {"kind": "alert", "via": "gateway", "id": "al-1", "category": "suspicious",
         "cell": "87195da49ffffff", "summary": "a neighbour's alert"}


@pytest.fixture
def hub(hub_dir):
    config = hub_dir / "config.toml"
    config.write_text(config.read_text() + CONFIG)
    hub = Hub(hub_dir)
    yield hub
    hub.close()


@pytest.fixture
def push(hub):
    with PushService(load_or_create_vapid_key(hub.data).application_server_key) as service:
        yield service


def subscribe(hub, push: PushService, person: str, browser: str) -> None:
    """Keep a browser's subscription for a person, as the web UI's POST does."""
    sub = push.subscribe(browser)
    PushSubscriptions(hub.db).add(person, sub["endpoint"], sub["keys"]["p256dh"],
                                  sub["keys"]["auth"], "Firefox on Linux")


async def wait(push: PushService, name: str, count: int) -> list[dict]:
    return await asyncio.to_thread(push.wait_for, name, count)


async def test_a_request_arrives_encrypted_with_only_title_body_and_link(hub, push):
    subscribe(hub, push, "owner", "phone")
    subscribe(hub, push, "owner", "laptop")
    async with NotifyService(hub):
        hub.emit(REQUEST)
        phone = await wait(push, "phone", 1)
        laptop = await wait(push, "laptop", 1)
    expected = {"title": "Footage request from Metro Police, Precinct 9",
                "body": "Metro Police, Precinct 9 asks for footage (case 24-1187); approve or "
                        "deny it",
                "link": "/requests/req-7"}
    assert phone == laptop == [expected]
    assert push.refused == []
    assert push.browsers["phone"].hits == 1


def test_the_payload_never_carries_a_snapshot_or_a_location():
    n = Notification(trigger="motion", title="Motion on porch", body="person at the door",
                     link="/cameras/porch", camera="porch", snapshot=b"\xff\xd8jpeg",
                     event={"lat": 51.5, "lon": -0.12, "camera": "porch"},
                     url="https://hub.example.org/cameras/porch")
    assert json.loads(payload_of(n)) == {"title": "Motion on porch", "body": "person at the door",
                                         "link": "/cameras/porch"}


async def test_a_gone_subscription_410_is_forgotten_and_the_others_still_get_it(hub, push):
    subscribe(hub, push, "owner", "phone")
    subscribe(hub, push, "owner", "old-laptop")
    push.answer("old-laptop", 410)
    store = PushSubscriptions(hub.db)
    async with NotifyService(hub):
        hub.emit(REQUEST)
        await wait(push, "phone", 1)
        await asyncio.to_thread(push.wait_for_hits, "old-laptop", 1)
        # The 410 counts as done: the notification is not retried to anyone.
        hub.emit({**ALERT, "id": "al-2"})
        received = await wait(push, "phone", 2)
    assert [s.service for s in store.of("owner")] == ["127.0.0.1"]
    assert [s.endpoint for s in store.of("owner")] == [push.browsers["phone"].endpoint]
    assert push.browsers["old-laptop"].hits == 1
    assert push.browsers["phone"].hits == 2
    assert received[1]["title"] == "Neighbourhood alert: suspicious"


async def test_a_500_is_retried_without_blocking_other_targets_or_resending(hub, push):
    hub.people.add(VIEWER, "viewer", VIEWER_PASS)
    subscribe(hub, push, "owner", "phone")
    subscribe(hub, push, "owner", "tablet")
    subscribe(hub, push, VIEWER, "sam-phone")
    released = push.fail_until_released("tablet", 500)
    async with NotifyService(hub):
        hub.emit(ALERT)
        # The viewer's target, and the owner's other browser, get it while the tablet's push
        # service keeps failing.
        await wait(push, "sam-phone", 1)
        await wait(push, "phone", 1)
        await asyncio.to_thread(push.wait_for_hits, "tablet", 2)
        assert push.browsers["tablet"].received == []
        released.set()
        tablet = await wait(push, "tablet", 1)
    assert tablet[0]["title"] == "Neighbourhood alert: suspicious"
    assert tablet[0]["link"] == "/neighbourhood"
    # Retried: the tablet was pushed to more than once; the phone, which took it, only once.
    assert push.browsers["tablet"].hits >= 2
    assert push.browsers["phone"].hits == 1
    assert push.browsers["sam-phone"].hits == 1


async def test_a_stalled_push_service_times_out_and_only_it_is_tried_again(hub_dir):
    """The dispatcher's timeout cancels a send stuck on one browser's push service; the retry
    goes to that browser only, not again to the one that took it before the timeout."""
    config = hub_dir / "config.toml"
    config.write_text(config.read_text() + CONFIG.replace("timeout_s = 20", "timeout_s = 1"))
    hub = Hub(hub_dir)
    with PushService(load_or_create_vapid_key(hub.data).application_server_key) as push:
        subscribe(hub, push, "owner", "phone")
        subscribe(hub, push, "owner", "tablet")
        released = push.hang_until_released("tablet")
        try:
            async with NotifyService(hub):
                hub.emit(ALERT)
                await wait(push, "phone", 1)
                await asyncio.to_thread(push.wait_for_hits, "tablet", 3)
                released.set()
                await wait(push, "tablet", 1)
        finally:
            released.set()
            hub.close()
        assert push.browsers["phone"].hits == 1


async def test_a_push_service_that_is_down_raises_for_the_retry(hub, push):
    subscribe(hub, push, "owner", "phone")
    notifier = WebPushNotifier(hub, {"type": "webpush", "name": "owner-browsers",
                                     "person": "owner"})
    push.stop()
    n = Notification(trigger="alert", title="t", body="b", link="/neighbourhood")
    try:
        with pytest.raises(Exception) as caught:
            await notifier.send(n)
    finally:
        await notifier.close()
    assert str(caught.value) == "1 of 1 push services refused or failed " \
                                "(127.0.0.1: ClientConnectorError)"
    # Nothing was dropped: the subscription stays for the next try.
    assert len(PushSubscriptions(hub.db).of("owner")) == 1


@pytest.mark.parametrize(("settings", "error"), [
    ({"contact": "owner"}, "contact must be a mailto: address or an https:// URL"),
    ({"ttl_s": -1}, "ttl_s"),
    ({"colour": "red"}, "colour"),
])
def test_bad_settings_stop_the_hub_at_start_with_the_key_named(hub, settings, error):
    entry = NotifierEntry(type="webpush", name="owner-browsers", **settings)
    with pytest.raises(ConfigError) as caught:
        build_notifier(hub, entry, {"webpush": WebPushNotifier})
    assert str(caught.value).startswith("notifiers.owner-browsers")
    assert error in str(caught.value)
