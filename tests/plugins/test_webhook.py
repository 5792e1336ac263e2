"""The webhook notifier against a real receiver on loopback that checks the HMAC itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.config import NotifierEntry
from hub.errors import ConfigError
from hub.notify import Notification, NotifyError
from hub.notify.dispatch import build_notifier
from hub.service import Hub
from plugins.notifiers.webhook import WebhookNotifier, sign, verify
from tests.notify_peers import Receiver

SECRET = "0123456789abcdef-webhook-secret"


@pytest.fixture
def hub(hub_dir, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("WRONG_SECRET", "another-secret-of-enough-bytes")
    monkeypatch.setenv("SHORT_SECRET", "short")
    opened = Hub(hub_dir)
    yield opened
    opened.close()


def _entry(url: str = "http://127.0.0.1:9/hook", **keys) -> NotifierEntry:
    return NotifierEntry.model_validate({"type": "webhook", "name": "hook", "url": url,
                                         "secret": {"env": "HOOK_SECRET"}} | keys)


def _notification(**keys) -> Notification:
    fields = {"trigger": "motion", "title": "Motion on yard", "body": "motion on yard at 12:00",
              "link": "/cameras/yard", "camera": "yard", "event": {"kind": "motion"},
              "url": "https://hub.example.lan/cameras/yard"}
    return Notification(**(fields | keys))


async def test_a_signed_post_carries_the_notification(hub):
    receiver = await Receiver(SECRET.encode()).start()
    notifier = WebhookNotifier(hub, _entry(receiver.url).model_dump())
    try:
        n = _notification(snapshot=b"\xff\xd8\xff jpeg")
        await notifier.send(n)
    finally:
        await notifier.close()
        await receiver.stop()
    [hit] = receiver.hits
    assert hit.accepted and hit.status == 200
    stamp = int(hit.headers["X-Porchlight-Timestamp"])
    assert abs(stamp - time.time()) < 300
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + hit.body, hashlib.sha256)
    assert hit.headers["X-Porchlight-Signature"] == "sha256=" + expected.hexdigest()
    assert hit.headers["Content-Type"] == "application/json"
    assert hit.json() == {
        "id": n.id, "trigger": "motion", "title": "Motion on yard",
        "body": "motion on yard at 12:00", "link": "/cameras/yard",
        "url": "https://hub.example.lan/cameras/yard", "camera": "yard", "hub": "test-hub",
        "sent": stamp, "event": {"kind": "motion"},
        "snapshot": base64.b64encode(b"\xff\xd8\xff jpeg").decode()}


async def test_a_receiver_with_another_secret_refuses_it_and_the_sender_is_told(hub):
    receiver = await Receiver(b"another-secret-of-enough-bytes").start()
    notifier = WebhookNotifier(hub, _entry(receiver.url).model_dump())
    try:
        with pytest.raises(NotifyError) as caught:
            await notifier.send(_notification())
    finally:
        await notifier.close()
        await receiver.stop()
    assert str(caught.value) == "the receiver answered HTTP 401"
    assert [h.accepted for h in receiver.hits] == [False]
    assert receiver.accepted == []


async def test_a_redirect_is_not_followed(hub):
    receiver = await Receiver(SECRET.encode(), lambda n: 307).start()
    notifier = WebhookNotifier(hub, _entry(receiver.url).model_dump())
    try:
        with pytest.raises(NotifyError, match=r"^the receiver answered HTTP 307$"):
            await notifier.send(_notification())
    finally:
        await notifier.close()
        await receiver.stop()
    assert len(receiver.hits) == 1


@pytest.mark.parametrize(("keys", "error"), [
    ({"secret": {"env": "SHORT_SECRET"}},
     "notifiers.hook: secret: use at least 16 bytes (for example: openssl rand -hex 32)"),
    ({"secret": {"env": "UNSET_SECRET"}},
     "notifiers.hook: secret: environment variable UNSET_SECRET is not set"),
    ({"url": "ftp://example.org/x"},
     "notifiers.hook: url: use an http:// or https:// URL"),
    ({"secret": "in-the-config-in-plain-text"},
     "notifiers.hook: secret: Input should be a valid dictionary or instance of SecretRef"),
    ({"method": "PUT"}, "notifiers.hook: method: unknown key"),
])
def test_bad_settings_stop_the_start_with_the_key_and_why(hub, keys, error):
    from plugins.notifiers import webhook

    entry = _entry(**keys)
    with pytest.raises(ConfigError) as caught:
        build_notifier(hub, entry, {"webhook": webhook.WebhookNotifier})
    assert str(caught.value) == error


@settings(max_examples=300, deadline=None)
@given(stamp=st.text(max_size=30), signature=st.text(max_size=80), body=st.binary(max_size=200))
def test_verify_refuses_anything_but_the_signature_and_never_raises(stamp, signature, body):
    secret = b"0123456789abcdef"
    now = 1_800_000_000
    plain = stamp.isascii() and stamp.isdigit() and len(stamp) <= 12
    assert verify(secret, stamp, body, signature, now=now) is (
        plain and abs(int(stamp) - now) <= 300 and signature == sign(secret, int(stamp), body))
    assert not verify(secret, stamp, body, sign(secret, now, body), now=now) or stamp == str(now)
    assert verify(secret, str(now), body, sign(secret, now, body), now=now)
    assert not verify(secret, str(now - 301), body, sign(secret, now - 301, body), now=now)
