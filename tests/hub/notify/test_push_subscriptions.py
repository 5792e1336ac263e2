"""Web Push subscriptions and the VAPID key: a browser's subscription JSON is outside input,
checked strictly (property tests); a refused one stores nothing; the VAPID key is made once,
mode 0600, and every caller (threads racing at first need) gets the same one."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.datadir import DataDir
from hub.db import connect
from hub.notify.push_subscriptions import (
    MAX_PER_PERSON,
    PushSubscriptionError,
    PushSubscriptions,
    browser_label,
    parse_subscription,
)
from hub.notify.vapid import load_or_create_vapid_key


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def p256_public() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return b64url(key.public_bytes(serialization.Encoding.X962,
                                   serialization.PublicFormat.UncompressedPoint))


P256DH = p256_public()
AUTH = b64url(os.urandom(16))
GOOD = {"endpoint": "https://fcm.googleapis.com/fcm/send/abc:def", "expirationTime": None,
        "keys": {"p256dh": P256DH, "auth": AUTH}}


def body(**changes) -> bytes:
    data = json.loads(json.dumps(GOOD))
    keys = changes.pop("keys", {})
    data.update(changes)
    data["keys"].update(keys)
    return json.dumps(data).encode()


def test_a_browsers_subscription_is_taken():
    assert parse_subscription(body()) == (GOOD["endpoint"], P256DH, AUTH)
    # Plain http only to this machine (a push service beside the hub, the tests' endpoint).
    assert parse_subscription(body(endpoint="http://127.0.0.1:8080/push/x"))[0] == \
        "http://127.0.0.1:8080/push/x"
    assert parse_subscription(body(endpoint="http://[::1]:8080/p"))[0] == "http://[::1]:8080/p"


@pytest.mark.parametrize(("raw", "error"), [
    (b"not json", "the subscription is not JSON"),
    (b"[]", "the subscription must be a JSON object with endpoint and keys"),
    (json.dumps({"endpoint": GOOD["endpoint"]}).encode(),
     "the subscription must be a JSON object with endpoint and keys"),
    (body(endpoint=""), "the subscription has no endpoint"),
    (body(endpoint=5), "the subscription has no endpoint"),
    (body(endpoint="http://push.example.com/x"), "the push endpoint must be an https URL"),
    (body(endpoint="http://192.168.1.9/x"), "the push endpoint must be an https URL"),
    (body(endpoint="file:///etc/passwd"), "the push endpoint must be an https URL with a host"),
    (body(endpoint="javascript:alert(1)"), "the push endpoint must be an https URL with a host"),
    (body(endpoint="https://user:pw@push.example.com/x"),
     "the push endpoint must be an https URL with a host"),
    (body(endpoint="https://push.example.com:99999/x"), "the push endpoint is not a URL"),
    (body(endpoint="https://push.example.com/a b"),
     "the push endpoint must be plain ASCII with no spaces"),
    (body(endpoint="https://push.example.com/" + "a" * 2048),
     "the push endpoint is longer than 2048 characters"),
    (body(keys={"p256dh": "!!"}), "keys.p256dh is not base64url"),
    (body(keys={"p256dh": b64url(b"\x04" + b"\x01" * 64)}), "keys.p256dh is not a P-256 public key"),
    (body(keys={"p256dh": b64url(os.urandom(33))}), "keys.p256dh must be 65 bytes, not 33"),
    (body(keys={"p256dh": None}), "keys.p256dh must be a base64url string"),
    (body(keys={"auth": b64url(os.urandom(8))}), "keys.auth must be 16 bytes, not 8"),
    (body(keys={"auth": 16}), "keys.auth must be a base64url string"),
    (b"{" + b" " * 5000 + b"}", "the subscription is larger than 4096 bytes"),
])
def test_a_bad_subscription_is_refused_with_its_reason(raw, error):
    with pytest.raises(PushSubscriptionError) as caught:
        parse_subscription(raw)
    assert str(caught.value) == error


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_are_taken_or_refused_with_a_push_subscription_error(raw):
    try:
        endpoint, p256dh, auth = parse_subscription(raw)
    except PushSubscriptionError:
        return
    assert endpoint.startswith(("https://", "http://"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(endpoint=json_values | st.text(max_size=300).map(lambda t: "https://" + t),
       p256dh=json_values | st.just(P256DH), auth=json_values | st.just(AUTH),
       extra=st.dictionaries(st.text(max_size=10), json_values, max_size=3))
def test_any_json_is_taken_only_when_every_part_is_right(endpoint, p256dh, auth, extra):
    raw = json.dumps({**extra, "endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}})
    try:
        taken = parse_subscription(raw.encode())
    except PushSubscriptionError:
        return
    assert taken == (endpoint, p256dh, auth)
    assert p256dh == P256DH and auth == AUTH


@pytest.fixture
def store(tmp_path):
    db = connect(tmp_path / "porchlight.db")
    yield PushSubscriptions(db)
    db.conn.close()


def test_subscriptions_are_kept_per_person_and_removed_only_by_their_person(store):
    a = store.add("owner", "https://push.example.com/a", P256DH, AUTH, "Firefox on Linux")
    b = store.add("sam", "https://push.example.com/b", P256DH, AUTH, "Chrome on Android")
    assert [s.id for s in store.of("owner")] == [a.id]
    assert [s.id for s in store.of("sam")] == [b.id]
    assert store.of("owner")[0].service == "push.example.com"
    assert store.remove("owner", b.id) is False  # not theirs
    assert [s.id for s in store.of("sam")] == [b.id]
    assert store.remove("sam", b.id) is True
    assert store.of("sam") == []


def test_a_browser_subscribed_again_moves_to_whoever_subscribed_it_last(store):
    store.add("owner", "https://push.example.com/a", P256DH, AUTH)
    store.add("sam", "https://push.example.com/a", P256DH, AUTH)
    assert store.of("owner") == []
    assert [s.endpoint for s in store.of("sam")] == ["https://push.example.com/a"]


def test_past_the_cap_a_subscription_is_refused_and_nothing_changes(store):
    for i in range(MAX_PER_PERSON):
        store.add("owner", f"https://push.example.com/{i}", P256DH, AUTH)
    before = store.of("owner")
    with pytest.raises(PushSubscriptionError) as caught:
        store.add("owner", "https://push.example.com/one-more", P256DH, AUTH)
    assert str(caught.value) == \
        f"owner already has {MAX_PER_PERSON} browsers subscribed; remove one first"
    assert store.of("owner") == before


def test_a_gone_endpoint_is_forgotten(store):
    store.add("owner", "https://push.example.com/a", P256DH, AUTH)
    assert store.drop_endpoint("https://push.example.com/a") is True
    assert store.of("owner") == []
    assert store.drop_endpoint("https://push.example.com/a") is False


@pytest.mark.parametrize(("agent", "label"), [
    ("Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0", "Firefox on Android"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 "
     "Safari/537.36", "Chrome on Linux"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0 Safari/537.36 Edg/126.0", "Edge on Windows"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari on iPhone"),
    ("", "A browser"),
])
def test_browsers_are_named_by_their_user_agent(agent, label):
    assert browser_label(agent) == label


def test_the_vapid_key_is_made_once_private_and_the_same_for_every_caller(tmp_path):
    data = DataDir(tmp_path / "hub")
    barrier = threading.Barrier(8)

    def first_need(_):
        barrier.wait()
        return load_or_create_vapid_key(data).application_server_key

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(first_need, range(8)))
    assert len(keys) == 1
    assert stat.S_IMODE(data.vapid_key.stat().st_mode) == 0o600
    assert load_or_create_vapid_key(data).application_server_key == keys.pop()
    assert sorted(p.name for p in data.vapid_key.parent.iterdir()) == ["vapid-p256.pem"]
    raw = base64.urlsafe_b64decode(load_or_create_vapid_key(data).application_server_key + "=")
    assert len(raw) == 65 and raw[0] == 4


def test_a_key_made_by_another_process_first_is_the_one_kept(tmp_path, monkeypatch):
    """Two processes at first need: the one whose link lands second keeps the first key."""
    import hub.notify.vapid as vapid

    data = DataDir(tmp_path / "hub")
    theirs = load_or_create_vapid_key(DataDir(tmp_path / "other"))
    real_link = os.link

    def the_other_process_wins(src, dst):
        data.vapid_key.write_bytes(theirs.private_pem())
        return real_link(src, dst)

    monkeypatch.setattr(vapid.os, "link", the_other_process_wins)
    key = load_or_create_vapid_key(data)
    assert key.application_server_key == theirs.application_server_key


def test_a_removed_person_takes_their_browsers_with_them(hub_dir):
    """Someone added later under the same name must not be notified on the old person's phone."""
    from hub.people import People

    db = connect(hub_dir / "porchlight.db")
    try:
        people, store = People(DataDir(hub_dir), db), PushSubscriptions(db)
        people.add("sam", "viewer", "sam-passphrase-long")
        store.add("sam", "https://push.example.com/sams-old-phone", P256DH, AUTH)
        store.add("owner", "https://push.example.com/owners-phone", P256DH, AUTH)
        people.remove("sam")
        people.add("sam", "viewer", "another-sam-passphrase")
        assert store.of("sam") == []
        assert [s.endpoint for s in store.of("owner")] == ["https://push.example.com/owners-phone"]
    finally:
        db.conn.close()
