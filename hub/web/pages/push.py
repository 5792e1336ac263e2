"""Web Push, for every signed-in person: notify this browser, list and remove one's browsers.

The page hands the hub's VAPID public key (RFC 8292) to a small script that registers the
service worker (hub/web/static/push-sw.js) and asks the browser's PushManager for a
subscription; the script posts it here with the session's CSRF token. Each person sees and
removes only their own subscriptions. The webpush notifier (plugins/notifiers/webpush.py)
sends to them.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hub.notify.push_subscriptions import (
    MAX_SUBSCRIPTION_BYTES,
    PushSubscriptionError,
    PushSubscriptions,
    browser_label,
    parse_subscription,
)
from hub.notify.vapid import VapidKey, load_or_create_vapid_key
from hub.web.ui import HUB, render, session_of

SUBSCRIPTIONS = web.AppKey("push_subscriptions", PushSubscriptions)
VAPID = web.AppKey("vapid_key", dict)


async def _vapid(app: web.Application) -> VapidKey:
    cache = app[VAPID]
    if "key" not in cache:
        cache["key"] = await asyncio.to_thread(load_or_create_vapid_key, app[HUB].data)
    return cache["key"]


async def push_page(request: web.Request) -> web.Response:
    """Show this person's subscribed browsers and the button that adds this one."""
    session = session_of(request)
    key = await _vapid(request.app)
    # Subscribing is only half: a [[notifiers]] entry of type webpush for this person sends.
    targeted = any(entry.type == "webpush" and entry.person == session.name
                   for entry in request.app[HUB].config.notifiers)
    subscriptions = await asyncio.to_thread(request.app[SUBSCRIPTIONS].of, session.name)
    return render(request, "push.html", public_key=key.application_server_key,
                  subscriptions=subscriptions,
                  removed=request.query.get("removed") == "1", targeted=targeted)


async def vapid_public_key(request: web.Request) -> web.Response:
    """Answer the hub's VAPID public key (base64url), for PushManager.subscribe."""
    key = await _vapid(request.app)
    return web.json_response({"publicKey": key.application_server_key})


async def subscribe(request: web.Request) -> web.Response:
    """Keep the posted PushSubscription for the signed-in person."""
    session = session_of(request)
    if request.content_length is not None and request.content_length > MAX_SUBSCRIPTION_BYTES:
        return web.json_response(
            {"error": f"the subscription is larger than {MAX_SUBSCRIPTION_BYTES} bytes"},
            status=413)
    body = await request.content.read(MAX_SUBSCRIPTION_BYTES + 1)
    try:
        endpoint, p256dh, auth = parse_subscription(body)
        # In a thread: the write waits its turn behind the cameras' (one writer at a time).
        subscription = await asyncio.to_thread(
            request.app[SUBSCRIPTIONS].add, session.name, endpoint, p256dh, auth,
            browser_label(request.headers.get("User-Agent", "")))
    except PushSubscriptionError as err:
        status = 413 if len(body) > MAX_SUBSCRIPTION_BYTES else 400
        return web.json_response({"error": str(err)}, status=status)
    return web.json_response({"id": subscription.id, "service": subscription.service}, status=201)


async def unsubscribe(request: web.Request) -> web.Response:
    """Remove one of the signed-in person's own subscriptions."""
    session = session_of(request)
    removed = await asyncio.to_thread(request.app[SUBSCRIPTIONS].remove, session.name,
                                      request.match_info["id"])
    if not removed:
        raise web.HTTPNotFound(text="no such subscription of yours")
    raise web.HTTPSeeOther("/settings/push?removed=1")


def setup(app: web.Application) -> None:
    """Add the Web Push pages."""
    app[SUBSCRIPTIONS] = PushSubscriptions(app[HUB].db)
    app[VAPID] = {}
    app.router.add_get("/settings/push", push_page)
    app.router.add_get("/settings/push/key", vapid_public_key)
    app.router.add_post("/settings/push/subscriptions", subscribe)
    app.router.add_post("/settings/push/subscriptions/{id}/remove", unsubscribe)
