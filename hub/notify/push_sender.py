"""Sending one Web Push message to the browsers a person subscribed.

RFC 8030 delivery, RFC 8291 payload encryption (aes128gcm) and RFC 8292 VAPID, all done by
pywebpush, under the hub's VAPID key (hub/notify/vapid.py). A push service answering 404 or
410 says the subscription is gone, so it is forgotten; any other failure is reported back, and
the caller decides whether to try again. The `webpush` notifier and the web UI's test button
both send through here.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from py_vapid import Vapid02, VapidException
from pywebpush import WebPushException, webpush_async

from hub.notify.push_subscriptions import PushSubscriptions, Subscription
from hub.notify.vapid import load_or_create_vapid_key

log = logging.getLogger(__name__)
DEFAULT_CONTACT = "mailto:porchlight@localhost"
DEFAULT_TTL_S = 86400
# One push service's answer; under the dispatcher's timeout for a whole send ([notify]
# timeout_s, 15 s), so a slow service fails on its own and the others' answers count.
PUSH_TIMEOUT_S = 10.0


class PushSender:
    """Push bytes to every browser a person subscribed, under the hub's VAPID key."""

    def __init__(self, hub, *, contact: str = DEFAULT_CONTACT, ttl_s: int = DEFAULT_TTL_S,
                 name: str = "webpush") -> None:
        self.contact = contact
        self.ttl_s = ttl_s
        self.name = name
        self.subscriptions = PushSubscriptions(hub.db)
        self.vapid = Vapid02.from_pem(load_or_create_vapid_key(hub.data).private_pem())
        try:
            self.vapid.sign({"sub": contact, "aud": "https://push.invalid"})
        except VapidException as err:
            raise ValueError("contact must be a mailto: address or an https:// URL") from err
        self.session: aiohttp.ClientSession | None = None

    async def send(self, person: str, data: bytes, urgency: str = "normal",
                   delivered: set[str] | None = None) -> tuple[int, list[str]]:
        """Push to the person's browsers not in `delivered`; return (how many tried, failures)."""
        delivered = set() if delivered is None else delivered
        subscriptions = await asyncio.to_thread(self.subscriptions.of, person)
        todo = [s for s in subscriptions if s.endpoint not in delivered]
        if not todo:
            return 0, []
        if self.session is None:
            self.session = aiohttp.ClientSession()
        outcomes = await asyncio.gather(*(self._push(person, s, data, {"Urgency": urgency},
                                                     delivered) for s in todo))
        return len(todo), [outcome for outcome in outcomes if outcome is not None]

    async def _push(self, person: str, subscription: Subscription, data: bytes, headers: dict,
                    delivered: set[str]) -> str | None:
        """Push to one browser; return None when it took it (or is gone), else why not."""
        try:
            await webpush_async(subscription.subscription_info(), data=data,
                                vapid_private_key=self.vapid, vapid_claims={"sub": self.contact},
                                ttl=self.ttl_s, headers=headers, aiohttp_session=self.session,
                                timeout=aiohttp.ClientTimeout(total=PUSH_TIMEOUT_S))
        except WebPushException as err:
            status = err.status_code
            if status in (404, 410):
                # RFC 8030 section 7.3: the subscription expired or the browser dropped it.
                await asyncio.to_thread(self.subscriptions.drop_endpoint, subscription.endpoint)
                log.info("notifier %s: a browser of %s unsubscribed (%s at %s); forgotten",
                         self.name, person, status, subscription.service)
                delivered.add(subscription.endpoint)
                return None
            return f"{subscription.service}: HTTP {status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            return f"{subscription.service}: {type(err).__name__}"
        # Noted at once, not after the others answer: if the dispatcher's timeout cancels
        # this send, its retry still skips the browsers that already took it.
        delivered.add(subscription.endpoint)
        return None

    async def close(self) -> None:
        """Close the HTTP client."""
        if self.session is not None:
            await self.session.close()
            self.session = None
