"""Built-in notifier `webpush`: Web Push to the browsers a person subscribed in the web UI.

RFC 8030 delivery, RFC 8291 payload encryption (aes128gcm) and RFC 8292 VAPID, all done by
pywebpush; the hub's VAPID key is the one the web UI handed to the browsers
(hub/notify/vapid.py). The payload is only `{"title", "body", "link"}`, where link is a path
of the web UI that the service worker opens on its own origin: never a snapshot, footage or a
location. A push service answering 404 or 410 says the subscription is gone, so it is
forgotten; any other failure raises, and the dispatcher tries again with backoff, sending
only to the push services that did not take it yet.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections import OrderedDict

import aiohttp
from py_vapid import Vapid02, VapidException
from pydantic import BaseModel, ConfigDict, Field
from pywebpush import WebPushException, webpush_async

from hub.config import NotifierEntry
from hub.hookspecs import hookimpl
from hub.notify import Notification, NotifyError
from hub.notify.push_subscriptions import PushSubscriptions, Subscription
from hub.notify.vapid import load_or_create_vapid_key

log = logging.getLogger(__name__)
MAX_TITLE = 120
MAX_BODY = 1000
# RFC 8030 Urgency: a phone saving its battery still wakes for these.
URGENT = frozenset({"request", "alert", "fork"})
# Notifications whose retries must skip the browsers that already got them.
REMEMBERED = 64
# One push service's answer; under the dispatcher's timeout for a whole send ([notify]
# timeout_s, 15 s), so a slow service fails on its own and the others' answers count.
PUSH_TIMEOUT_S = 10.0


class WebPushSettings(BaseModel):
    """The `webpush` notifier's own keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # RFC 8292 `sub`: how a push service can reach whoever runs this hub.
    contact: str = Field(default="mailto:porchlight@localhost", max_length=200)
    # RFC 8030 TTL: how long a push service keeps a notification for a browser that is offline.
    ttl_s: int = Field(default=86400, ge=0, le=28 * 86400)


def payload_of(n: Notification) -> bytes:
    """Return the only bytes a push service carries (encrypted): title, body and link."""
    return json.dumps({"title": n.title[:MAX_TITLE], "body": n.body[:MAX_BODY],
                       "link": n.link}, ensure_ascii=False).encode()


class WebPushNotifier:
    """Send each notification to every browser its person subscribed."""

    def __init__(self, hub, settings: dict) -> None:
        own = {k: v for k, v in settings.items() if k not in NotifierEntry.HUB_KEYS}
        self.settings = WebPushSettings.model_validate(own)
        self.person = settings.get("person", "owner")
        self.name = settings.get("name", "webpush")
        self.subscriptions = PushSubscriptions(hub.db)
        self.vapid = Vapid02.from_pem(load_or_create_vapid_key(hub.data).private_pem())
        try:
            self.vapid.sign({"sub": self.settings.contact, "aud": "https://push.invalid"})
        except VapidException as err:
            raise ValueError("contact must be a mailto: address or an https:// URL") from err
        self.session: aiohttp.ClientSession | None = None
        self._delivered: OrderedDict[int, tuple[weakref.ref, set[str]]] = OrderedDict()

    async def send(self, n: Notification) -> None:
        """Push the notification to each of the person's browsers that has not had it yet."""
        delivered = self._remember(n)
        subscriptions = await asyncio.to_thread(self.subscriptions.of, self.person)
        todo = [s for s in subscriptions if s.endpoint not in delivered]
        if not todo:
            return
        if self.session is None:
            self.session = aiohttp.ClientSession()
        data = payload_of(n)
        headers = {"Urgency": "high" if n.trigger in URGENT else "normal"}
        outcomes = await asyncio.gather(*(self._push(s, data, headers, delivered)
                                          for s in todo))
        failures = [outcome for outcome in outcomes if outcome is not None]
        if failures:
            raise NotifyError(f"{len(failures)} of {len(todo)} push services refused or failed "
                              f"({'; '.join(sorted(set(failures)))})")

    async def _push(self, subscription: Subscription, data: bytes, headers: dict,
                    delivered: set[str]) -> str | None:
        """Push to one browser; return None when it took it (or is gone), else why not."""
        try:
            await webpush_async(subscription.subscription_info(), data=data,
                                vapid_private_key=self.vapid,
                                vapid_claims={"sub": self.settings.contact},
                                ttl=self.settings.ttl_s, headers=headers,
                                aiohttp_session=self.session,
                                timeout=aiohttp.ClientTimeout(total=PUSH_TIMEOUT_S))
        except WebPushException as err:
            status = err.status_code
            if status in (404, 410):
                # RFC 8030 section 7.3: the subscription expired or the browser dropped it.
                await asyncio.to_thread(self.subscriptions.drop_endpoint, subscription.endpoint)
                log.info("notifier %s: a browser of %s unsubscribed (%s at %s); forgotten",
                         self.name, self.person, status, subscription.service)
                delivered.add(subscription.endpoint)
                return None
            return f"{subscription.service}: HTTP {status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            return f"{subscription.service}: {type(err).__name__}"
        # Noted at once, not after the others answer: if the dispatcher's timeout cancels
        # this send, its retry still skips the browsers that already took it.
        delivered.add(subscription.endpoint)
        return None

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
        if self.session is not None:
            await self.session.close()
            self.session = None


@hookimpl
def porchlight_notifier_types():
    """Offer the `webpush` notifier type."""
    return {"webpush": WebPushNotifier}
