"""Web Push subscriptions: the browsers each person asked to be notified in.

A browser's PushManager.subscribe() gives an endpoint at its push service (RFC 8030) and the
keys that payloads are encrypted to (RFC 8291: `p256dh`, the browser's P-256 public key, and
`auth`, a 16-byte secret). The web UI posts that JSON here; this module checks it strictly
(it comes from outside) and keeps it per person in the hub's database.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlite_utils
from cryptography.hazmat.primitives.asymmetric import ec

from hub.errors import UsageError
from hub.timeutil import iso, utcnow

TABLE = "push_subscriptions"
MAX_SUBSCRIPTION_BYTES = 4096
MAX_ENDPOINT = 2048
MAX_PER_PERSON = 10
MAX_LABEL = 200
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


class PushSubscriptionError(UsageError):
    """A subscription posted by a browser is malformed or not allowed."""


@dataclass(frozen=True)
class Subscription:
    """One browser's push subscription, kept for one person."""

    id: str
    person: str
    endpoint: str
    p256dh: str
    auth: str
    label: str
    created: str

    @property
    def service(self) -> str:
        """Return the push service's host, to show which service a browser uses."""
        return urlsplit(self.endpoint).hostname or ""

    def subscription_info(self) -> dict:
        """Return the subscription as the Push API's JSON (what pywebpush takes)."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


# (token in the User-Agent, name shown), most specific first: Edge and Opera also say Chrome,
# and Chrome also says Safari.
_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Safari/", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"), ("Mac OS X", "macOS"),
            ("Windows", "Windows"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def browser_label(user_agent: str) -> str:
    """Name a browser by its User-Agent ("Firefox on Android"), so a person tells theirs apart."""
    browser = next((name for token, name in _BROWSERS if token in user_agent), "A browser")
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    return f"{browser} on {system}" if system else browser


def _b64url(text: object, what: str, size: int) -> bytes:
    if not isinstance(text, str) or len(text) > 200:
        raise PushSubscriptionError(f"keys.{what} must be a base64url string")
    if not _BASE64URL.fullmatch(text):
        raise PushSubscriptionError(f"keys.{what} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except (binascii.Error, ValueError) as err:
        raise PushSubscriptionError(f"keys.{what} is not base64url") from err
    if len(raw) != size:
        raise PushSubscriptionError(f"keys.{what} must be {size} bytes, not {len(raw)}")
    return raw


def is_loopback_host(host: str) -> bool:
    """Say whether a URL's host is this machine (a loopback address or `localhost`)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: object) -> str:
    """Refuse an endpoint that is not an https URL (plain http only on loopback)."""
    if not isinstance(endpoint, str) or not endpoint:
        raise PushSubscriptionError("the subscription has no endpoint")
    if len(endpoint) > MAX_ENDPOINT:
        raise PushSubscriptionError(f"the push endpoint is longer than {MAX_ENDPOINT} characters")
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as err:
        raise PushSubscriptionError("the push endpoint is not a URL") from err
    if not host or parts.username is not None or parts.password is not None:
        raise PushSubscriptionError("the push endpoint must be an https URL with a host")
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in endpoint):
        raise PushSubscriptionError("the push endpoint must be plain ASCII with no spaces")
    # Browsers' push services are all https. Plain http only to this machine: a push service
    # run beside the hub, and the tests' RFC 8030 endpoint. Payloads are end-to-end encrypted
    # either way (RFC 8291).
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)):
        return endpoint
    raise PushSubscriptionError("the push endpoint must be an https URL")


def parse_subscription(body: bytes) -> tuple[str, str, str]:
    """Check a browser's PushSubscription JSON; return (endpoint, p256dh, auth)."""
    if len(body) > MAX_SUBSCRIPTION_BYTES:
        raise PushSubscriptionError(
            f"the subscription is larger than {MAX_SUBSCRIPTION_BYTES} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise PushSubscriptionError("the subscription is not JSON") from err
    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
        raise PushSubscriptionError("the subscription must be a JSON object with endpoint and keys")
    endpoint = check_endpoint(data.get("endpoint"))
    keys = data["keys"]
    p256dh = _b64url(keys.get("p256dh"), "p256dh", 65)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError as err:
        raise PushSubscriptionError("keys.p256dh is not a P-256 public key") from err
    _b64url(keys.get("auth"), "auth", 16)
    return endpoint, keys["p256dh"].rstrip("="), keys["auth"].rstrip("=")


class PushSubscriptions:
    """The push subscriptions of every person, in the hub's database."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def add(self, person: str, endpoint: str, p256dh: str, auth: str, label: str = "") -> Subscription:
        """Keep a browser's subscription for a person (a browser re-subscribing replaces its own)."""
        table = self.db[TABLE]
        label = "".join(c for c in label if c.isprintable())[:MAX_LABEL]
        with self.db.write_lock, self.db.conn:
            self.db.execute("BEGIN IMMEDIATE")
            # One browser has one subscription: whoever subscribes it last is notified in it.
            self.db.execute(f"DELETE FROM {TABLE} WHERE endpoint = ?", [endpoint])
            count = self.db.execute(f"SELECT count(*) FROM {TABLE} WHERE person = ?",
                                    [person]).fetchone()[0]
            if count >= MAX_PER_PERSON:
                raise PushSubscriptionError(
                    f"{person} already has {MAX_PER_PERSON} browsers subscribed; remove one first")
            row = {"id": secrets.token_urlsafe(9), "person": person, "endpoint": endpoint,
                   "p256dh": p256dh, "auth": auth, "label": label, "created": iso(utcnow())}
            table.insert(row)
        return Subscription(**row)

    def of(self, person: str) -> list[Subscription]:
        """Return a person's subscriptions, oldest first."""
        rows = self.db.execute(
            f"SELECT id, person, endpoint, p256dh, auth, label, created FROM {TABLE} "
            "WHERE person = ? ORDER BY created, id", [person]).fetchall()
        return [Subscription(*row) for row in rows]

    def remove(self, person: str, subscription_id: str) -> bool:
        """Remove one of a person's own subscriptions; say whether there was one."""
        with self.db.write_lock, self.db.conn:
            cursor = self.db.execute(f"DELETE FROM {TABLE} WHERE id = ? AND person = ?",
                                     [subscription_id, person])
        return cursor.rowcount > 0

    def drop_endpoint(self, endpoint: str) -> bool:
        """Forget an endpoint the push service says is gone (404 or 410)."""
        with self.db.write_lock, self.db.conn:
            cursor = self.db.execute(f"DELETE FROM {TABLE} WHERE endpoint = ?", [endpoint])
        return cursor.rowcount > 0
