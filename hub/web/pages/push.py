"""Web Push, for every signed-in person: notify this browser, list and remove one's browsers.

The page hands the hub's VAPID public key (RFC 8292) to a small script that registers the
service worker (hub/web/static/push-sw.js) and asks the browser's PushManager for a
subscription; the script posts it here with the session's CSRF token. Each person sees and
removes only their own subscriptions, and may push a test notification to them. The webpush
notifier (plugins/notifiers/webpush.py) sends to them.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from hub.notify.push_sender import DEFAULT_CONTACT, DEFAULT_TTL_S, PushSender
from hub.notify.push_subscriptions import (
    MAX_SUBSCRIPTION_BYTES,
    PushSubscriptionError,
    PushSubscriptions,
    browser_label,
    parse_subscription,
)
from hub.notify.vapid import VapidKey, load_or_create_vapid_key
from hub.web.ui import HUB, render, session_of
from hub.words import plural

SUBSCRIPTIONS = web.AppKey("push_subscriptions", PushSubscriptions)
VAPID = web.AppKey("vapid_key", dict)
TESTED = web.AppKey("push_tested", dict)
# Between two test notifications of one person: push services throttle senders that flood.
TEST_COOLDOWN_S = 10.0


async def _vapid(app: web.Application) -> VapidKey:
    cache = app[VAPID]
    if "key" not in cache:
        cache["key"] = await asyncio.to_thread(load_or_create_vapid_key, app[HUB].data)
    return cache["key"]


def _target(request: web.Request, person: str):
    """Return the person's webpush [[notifiers]] entry, or None."""
    return next((entry for entry in request.app[HUB].config.notifiers
                 if entry.type == "webpush" and entry.person == person), None)


async def _page(request: web.Request, status: int = 200, error: str | None = None,
                notice: str | None = None) -> web.Response:
    session = session_of(request)
    key = await _vapid(request.app)
    subscriptions = await asyncio.to_thread(request.app[SUBSCRIPTIONS].of, session.name)
    if notice is None and request.query.get("removed") == "1":
        notice = "That browser is no longer notified."
    if notice is None and (tested := request.query.get("tested", "")).isdigit():
        notice = (f"Sent a test notification to {plural(int(tested), 'browser')}: each should "
                  "show it now.")
    # Subscribing is only half: a [[notifiers]] entry of type webpush for this person sends.
    return render(request, "push.html", status=status, public_key=key.application_server_key,
                  subscriptions=subscriptions, error=error, notice=notice,
                  targeted=_target(request, session.name) is not None)


async def push_page(request: web.Request) -> web.Response:
    """Show this person's subscribed browsers and the button that adds this one."""
    return await _page(request)


async def send_test(request: web.Request) -> web.Response:
    """Push a test notification to every browser of the signed-in person."""
    session = session_of(request)
    entry = _target(request, session.name)
    if entry is None:
        return await _page(request, 409, f"No webpush notifier is set up for {session.name} in "
                                         "config.toml: nothing can be sent yet.")
    cooldowns = request.app[TESTED]
    now = time.monotonic()
    wait = cooldowns.get(session.name, 0.0) + TEST_COOLDOWN_S - now
    if wait > 0:
        return await _page(request, 429, f"A test was sent just now: try again in "
                                         f"{int(wait + 0.999)} s.")
    own = entry.own_settings()
    # The notifier validated these keys when the hub started.
    sender = PushSender(request.app[HUB], contact=own.get("contact", DEFAULT_CONTACT),
                        ttl_s=own.get("ttl_s", DEFAULT_TTL_S), name=entry.name)
    body = json.dumps({"title": f"Porchlight · {request.app[HUB].config.hub.name}",
                       "body": "A test: notifications reach this browser.",
                       "link": "/settings/push"}).encode()
    try:
        tried, failures = await sender.send(session.name, body)
    finally:
        await sender.close()
    if tried == 0:
        return await _page(request, 400, "None of your browsers is subscribed: press "
                                         "Notify this browser first.")
    cooldowns[session.name] = now
    if failures:
        return await _page(request, 502, f"{len(failures)} of {tried} push services refused or "
                                         f"failed: {'; '.join(sorted(set(failures)))}.")
    raise web.HTTPSeeOther(f"/settings/push?tested={tried}")


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
    app[TESTED] = {}
    app.router.add_get("/settings/push", push_page)
    app.router.add_get("/settings/push/key", vapid_public_key)
    app.router.add_post("/settings/push/subscriptions", subscribe)
    app.router.add_post("/settings/push/subscriptions/{id}/remove", unsubscribe)
    app.router.add_post("/settings/push/test", send_test)
