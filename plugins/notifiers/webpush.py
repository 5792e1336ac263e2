"""Built-in notifier `webpush`: Web Push to the browsers a person subscribed in the web UI.

RFC 8030 delivery, RFC 8291 payload encryption (aes128gcm) and RFC 8292 VAPID, all done by
pywebpush in hub/notify/push_sender.py, under the hub's VAPID key, the one the web UI handed
to the browsers (hub/notify/vapid.py). The payload is only `{"title", "body", "link"}`, where
link is a path of the web UI that the service worker opens on its own origin: never a
snapshot, footage or a location. A push service answering 404 or 410 says the subscription is gone, so it is
forgotten; any other failure raises, and the dispatcher tries again with backoff, sending
only to the push services that did not take it yet.
"""

from __future__ import annotations

import json
import weakref
from collections import OrderedDict

from pydantic import BaseModel, ConfigDict, Field

from hub.config import NotifierEntry
from hub.hookspecs import hookimpl
from hub.notify import Notification, NotifyError
from hub.notify.push_sender import DEFAULT_CONTACT, DEFAULT_TTL_S, PushSender

MAX_TITLE = 120
MAX_BODY = 1000
# RFC 8030 Urgency: a phone saving its battery still wakes for these.
URGENT = frozenset({"request", "alert", "fork"})
# Notifications whose retries must skip the browsers that already got them.
REMEMBERED = 64


class WebPushSettings(BaseModel):
    """The `webpush` notifier's own keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # RFC 8292 `sub`: how a push service can reach whoever runs this hub.
    contact: str = Field(default=DEFAULT_CONTACT, max_length=200)
    # RFC 8030 TTL: how long a push service keeps a notification for a browser that is offline.
    ttl_s: int = Field(default=DEFAULT_TTL_S, ge=0, le=28 * 86400)

    @classmethod
    def of_entry(cls, settings: dict) -> WebPushSettings:
        """Return the notifier's own keys out of a whole [[notifiers]] entry."""
        return cls.model_validate({k: v for k, v in settings.items()
                                   if k not in NotifierEntry.HUB_KEYS})


def payload_of(n: Notification) -> bytes:
    """Return the only bytes a push service carries (encrypted): title, body and link."""
    return json.dumps({"title": n.title[:MAX_TITLE], "body": n.body[:MAX_BODY],
                       "link": n.link}, ensure_ascii=False).encode()


class WebPushNotifier:
    """Send each notification to every browser its person subscribed."""

    def __init__(self, hub, settings: dict) -> None:
        self.settings = WebPushSettings.of_entry(settings)
        self.person = settings.get("person", "owner")
        self.sender = PushSender(hub, contact=self.settings.contact, ttl_s=self.settings.ttl_s,
                                 name=settings.get("name", "webpush"))
        self._delivered: OrderedDict[int, tuple[weakref.ref, set[str]]] = OrderedDict()

    async def send(self, n: Notification) -> None:
        """Push the notification to each of the person's browsers that has not had it yet."""
        tried, failures = await self.sender.send(
            self.person, payload_of(n), "high" if n.trigger in URGENT else "normal",
            self._remember(n))
        if failures:
            raise NotifyError(f"{len(failures)} of {tried} push services refused or failed "
                              f"({'; '.join(sorted(set(failures)))})")

    def _remember(self, n: Notification) -> set[str]:
        # Keyed by identity: the dispatcher retries with the very same object, and two equal
        # notifications (the same motion twice) are two notifications.
        # A weak reference: a notification's snapshot bytes are not kept alive here, and an id
        # reused after it is gone finds a dead reference.
        entry = self._delivered.get(id(n))
        if entry is not None and entry[0]() is n:
            self._delivered.move_to_end(id(n))
            return entry[1]
        self._delivered[id(n)] = (weakref.ref(n), set())
        while len(self._delivered) > REMEMBERED:
            self._delivered.popitem(last=False)
        return self._delivered[id(n)][1]

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.sender.close()


@hookimpl
def porchlight_notifier_types():
    """Offer the `webpush` notifier type."""
    return {"webpush": WebPushNotifier}
