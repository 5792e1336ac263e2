"""Neighbourhood: the alert feed, posting an alert (owners), the hub's gateway and LAN
neighbours, and joining a gateway with an invite code (owners; the running hub follows it at once).

Posting goes in two steps so that nothing leaves before the owner has seen it: the photo (or
a motion event's snapshot and clip) is prepared in memory exactly as `porchlight alerts post`
prepares it (faces blurred through the redaction hook unless the owner opts out, metadata
dropped) and shown as a preview; only "Post" stores the attachments and queues the signed
alert (hub.neighbourhood.attachments and service, the CLI's own functions). Drafts live in
memory for the session that made them, a few at a time, and expire.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from aiohttp import web

from federation.errors import FederationError
from federation.keys import parse_pin
from federation.member.client import alert_id
from federation.schemas import ALERT_CATEGORIES, MAX_TEXT
from hub.cameras.events import list_events
from hub.errors import PorchlightError
from hub.neighbourhood.alerts import LAN_NEIGHBOUR, LAW_ENFORCEMENT, OWN, list_alerts
from hub.neighbourhood.attachments import (
    MAX_PHOTO_BYTES,
    event_attachments,
    load_attachment,
    prepare_photo,
    remove_attachments,
    store_attachments,
)
from hub.neighbourhood.policy import choose_witness_policy
from hub.neighbourhood.service import alert_channels, join_async, load_membership, queue_alert
from hub.timeutil import utcnow
from hub.web.ui import HUB, UPLOADS, owner_only, read_form, render, session_of

log = logging.getLogger(__name__)
DRAFT_TTL_S = 15 * 60.0
MAX_DRAFTS_PER_SESSION = 3
MAX_FIELD_BYTES = 8 * 1024
# The photo, plus room for the form's other fields and the multipart framing.
UPLOAD_LIMIT = MAX_PHOTO_BYTES + 64 * 1024
PREVIEW_PATH = "/neighbourhood/preview"
DRAFTS = web.AppKey("alert_drafts", dict)
# One join at a time: a double click must not spend two invite codes.
JOINING = web.AppKey("joining", asyncio.Lock)
JOIN_FIELDS = {"url": 2048, "code": 512, "gateway_key": 256, "registry_key": 256}
JOIN_LABELS = {"url": "gateway URL", "code": "invite code", "gateway_key": "gateway key",
               "registry_key": "registry authority key"}


@dataclass
class Draft:
    """An alert prepared for the owner's preview; nothing of it has left the hub."""

    session: str
    category: str
    text: str
    items: list[tuple[bytes, str]]
    faces: int
    blurred: bool
    created: float = field(default_factory=time.monotonic)


def badge(verification: str) -> str:
    """Return the badge class of an alert's verification."""
    if verification.startswith(LAW_ENFORCEMENT):
        return "law"
    if verification == OWN:
        return "own"
    if verification == LAN_NEIGHBOUR:
        return "lan"
    return "member"


def feed_data(hub, session) -> dict:
    """Gather the feed, the neighbours' state and (for owners) recent events to share."""
    now = utcnow()
    alerts = list_alerts(hub.db, now)
    local = {a["sha256"] for alert in alerts for a in alert.attachments
             if load_attachment(hub.data, a["sha256"]) is not None}
    # What this hub posted: delivered to each channel yet, or still being retried, and why.
    delivery: dict[str, list[dict]] = {}
    for row in hub.db["outbox"].rows:
        delivery.setdefault(alert_id(row["token"]), []).append(
            {"channel": row["channel"], "delivered": row["delivered"],
             "error": row["last_error"]})
    membership = load_membership(hub.data)
    service = getattr(hub, "neighbourhood", None)
    lan_peers = []
    if service is not None and service.lan is not None:
        lan_peers = sorted(service.lan.directory.peers.values(), key=lambda p: (p.role, p.kid))
    events = []
    if session.is_owner:
        events = list_events(hub.vault, None, now - timedelta(days=2), None)[-20:][::-1]
    return {
        "alerts": [{"alert": a, "badge": badge(a.verification),
                    "photos": [x for x in a.attachments if x["sha256"] in local],
                    "delivery": delivery.get(a.id, [])}
                   for a in alerts],
        "gateway": membership,
        "gateway_state": service.gateway_state if service is not None else "not running",
        "lan_enabled": hub.config.lan.enabled,
        "witness_min": hub.config.witnesses.min,
        "lan_peers": lan_peers,
        "events": events,
        "categories": ALERT_CATEGORIES,
        "max_text": MAX_TEXT,
        "max_photo": MAX_PHOTO_BYTES,
    }


async def _page(request: web.Request, status: int = 200, error: str | None = None,
                form: dict | None = None, join_form: dict | None = None) -> web.Response:
    hub = request.app[HUB]
    data = await asyncio.to_thread(feed_data, hub, session_of(request))
    notice = "Joined the gateway." if request.query.get("joined") and data["gateway"] else None
    return render(request, "neighbourhood.html", status=status, error=error, notice=notice,
                  form=form or {"category": "suspicious", "text": "", "blur": "yes"},
                  join_form=join_form or {}, join_limits=JOIN_FIELDS, **data)


async def neighbourhood(request: web.Request) -> web.Response:
    """Show the feed, and the neighbours with their state."""
    return await _page(request)


async def attachment(request: web.Request) -> web.Response:
    """Serve a photo or clip of the feed that this hub holds (neighbourhood-public by its author)."""
    digest = request.match_info["sha256"]
    data = await asyncio.to_thread(load_attachment, request.app[HUB].data, digest)
    if data is None:
        raise web.HTTPNotFound(text="no such attachment")
    kind = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else (
        "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "video/mp4")
    return web.Response(body=data, content_type=kind)


async def _read_post_form(request: web.Request) -> tuple[dict[str, str], bytes | None]:
    """Read the post form: its text fields (each capped) and the photo, if one was chosen."""
    post = await request.post()  # capped at UPLOAD_LIMIT by the shell (ui.UPLOADS)
    fields: dict[str, str] = {}
    photo = None
    for name, value in post.items():
        if isinstance(value, str):
            fields[name] = value[:MAX_FIELD_BYTES]
        elif name == "photo" and value.filename:
            photo = value.file.read(MAX_PHOTO_BYTES + 1)
    return fields, photo


def _prune(drafts: dict[str, Draft], token: str) -> None:
    now = time.monotonic()
    for key in [k for k, d in drafts.items() if now - d.created > DRAFT_TTL_S]:
        del drafts[key]
    mine = sorted((d.created, k) for k, d in drafts.items() if d.session == token)
    for _, key in mine[:max(0, len(mine) - MAX_DRAFTS_PER_SESSION + 1)]:
        del drafts[key]


@owner_only
async def preview(request: web.Request) -> web.Response:
    """Prepare an alert's photo or event in memory and show it before anything leaves."""
    hub = request.app[HUB]
    session = session_of(request)
    fields, photo = await _read_post_form(request)
    category = fields.get("category", "")
    text = fields.get("text", "").strip()
    blur = fields.get("blur", "yes") != "no"
    event = fields.get("event", "")
    form = {"category": category, "text": text, "blur": "yes" if blur else "no", "event": event}

    async def refuse(message: str) -> web.Response:
        return await _page(request, status=400, error=message, form=form)

    if category not in ALERT_CATEGORIES:
        return await refuse("Choose one of the categories.")
    if not text:
        return await refuse("Say what happened: the text is empty.")
    if len(text) > MAX_TEXT:
        return await refuse(f"The text has {len(text)} characters; the limit is {MAX_TEXT}.")
    if photo is not None and event:
        return await refuse("Share a photo or an event, not both.")
    if photo is not None and len(photo) > MAX_PHOTO_BYTES:
        return await refuse(f"The photo is larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MiB.")

    def prepare() -> tuple[list[tuple[bytes, str]], int]:
        alert_channels(hub)  # refuse before any work if there is no one to tell
        if photo is not None:
            prepared, faces = prepare_photo(hub, photo, blur=blur)
            return [(prepared, "image/jpeg")], faces
        if event:
            return event_attachments(hub, event, session.identity, blur=blur)
        return [], 0

    try:
        items, faces = await asyncio.to_thread(prepare)
    except PorchlightError as err:
        return await refuse(str(err).removeprefix("--event: "))
    drafts = request.app[DRAFTS]
    _prune(drafts, session.token)
    draft_id = secrets.token_urlsafe(16)
    drafts[draft_id] = Draft(session.token, category, text, items, faces, blur)
    return render(request, "alert_preview.html", draft_id=draft_id,
                  draft=draft_preview(drafts[draft_id]))


def draft_preview(draft: Draft) -> dict:
    """Describe a draft for its preview page."""
    return {"category": draft.category.replace("_", " "), "text": draft.text,
            "faces": draft.faces, "blurred": draft.blurred,
            "files": [{"index": i, "type": kind, "size": len(data)}
                      for i, (data, kind) in enumerate(draft.items)]}


def _draft(request: web.Request) -> tuple[str, Draft]:
    session = session_of(request)
    draft_id = request.match_info["draft"]
    draft = request.app[DRAFTS].get(draft_id)
    if draft is None or draft.session != session.token or \
            time.monotonic() - draft.created > DRAFT_TTL_S:
        raise web.HTTPNotFound(text="this draft is gone (posted, discarded or expired): "
                                    "prepare the alert again")
    return draft_id, draft


@owner_only
async def draft_item(request: web.Request) -> web.Response:
    """Serve a draft's prepared photo or clip, to the session that prepared it."""
    _, draft = _draft(request)
    try:
        data, kind = draft.items[int(request.match_info["index"])]
    except (ValueError, IndexError):
        raise web.HTTPNotFound(text="no such item") from None
    return web.Response(body=data, content_type=kind)


@owner_only
async def post_draft(request: web.Request) -> web.Response:
    """Post a previewed alert: store its attachments and queue it for every channel."""
    hub = request.app[HUB]
    draft_id, draft = _draft(request)

    def post() -> dict:
        alert_channels(hub)
        attachments, created = store_attachments(hub.data, draft.items)
        try:
            return queue_alert(hub, draft.category, draft.text, attachments)
        except BaseException:
            remove_attachments(created)
            raise

    try:
        await asyncio.to_thread(post)
    except PorchlightError as err:
        return await _page(request, status=400, error=str(err))
    request.app[DRAFTS].pop(draft_id, None)
    raise web.HTTPSeeOther("/neighbourhood?posted=1")


@owner_only
async def discard_draft(request: web.Request) -> web.Response:
    """Drop a draft; nothing of it was stored or sent."""
    draft_id, _ = _draft(request)
    request.app[DRAFTS].pop(draft_id, None)
    raise web.HTTPSeeOther("/neighbourhood")


@owner_only
async def join_gateway(request: web.Request) -> web.Response:
    """Join a gateway with an invite code (`porchlight join`) and start following it at once."""
    hub = request.app[HUB]
    form = await read_form(request)
    fields = {name: form.get(name, "").strip()[:limit] for name, limit in JOIN_FIELDS.items()}
    shown = {name: value for name, value in fields.items() if name != "code"}

    async def refuse(message: str) -> web.Response:
        return await _page(request, status=400, error=message, join_form=shown)

    url, code = fields["url"], fields["code"]
    for name, limit in JOIN_FIELDS.items():
        if len(form.get(name, "").strip()) > limit:
            return await refuse(f"The {JOIN_LABELS[name]} is longer than {limit} characters.")
    if not url and hub.config.lan.enabled:
        try:
            url = gateway_on_the_lan(hub)
        except PorchlightError as err:
            return await refuse(str(err))
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        return await refuse("Give the gateway's URL, starting with https:// (or http://).")
    if not code:
        return await refuse("Give the invite code the gateway's operator sent you.")
    async with request.app[JOINING]:
        try:
            for name in ("gateway_key", "registry_key"):
                if fields[name]:
                    try:
                        parse_pin(fields[name])
                    except FederationError as err:
                        raise PorchlightError(f"{JOIN_LABELS[name]}: {err.message}") from None
            membership = await join_async(hub, url, code, pin=fields["gateway_key"] or None,
                                          registry_key=fields["registry_key"] or None)
        except (PorchlightError, FederationError) as err:
            return await refuse(str(err))
        # As `porchlight join` does: the default k of the witness policy (docs/witness.md).
        policy = await choose_witness_policy(hub, membership)
        service = getattr(hub, "neighbourhood", None)
        if service is not None:
            service.attach(membership)
    log.info("web: joined gateway %s at %s; agency requests need %d witness cosignatures",
             membership.gateway_name, membership.url, policy.k)
    raise web.HTTPSeeOther("/neighbourhood?joined=1#neighbours-h")


def gateway_on_the_lan(hub) -> str:
    """Return the URL of the one gateway the hub's LAN service has found, as `join CODE` does."""
    service = getattr(hub, "neighbourhood", None)
    peers = service.lan.directory.peers.values() if service and service.lan else []
    urls = sorted({p.url for p in peers if p.role == "gateway" and p.url})
    if not urls:
        raise PorchlightError("No gateway has answered on the LAN (mDNS) yet: give its URL.")
    if len(urls) > 1:
        raise PorchlightError(f"Several gateways answer on the LAN ({', '.join(urls)}): give "
                              "the URL of yours.")
    return urls[0]


def setup(app: web.Application) -> None:
    """Add the neighbourhood pages."""
    app[DRAFTS] = {}
    app[JOINING] = asyncio.Lock()
    app.router.add_post("/neighbourhood/join", join_gateway)
    app[UPLOADS][PREVIEW_PATH] = UPLOAD_LIMIT
    app.router.add_get("/neighbourhood", neighbourhood)
    app.router.add_get("/neighbourhood/attachments/{sha256}", attachment)
    app.router.add_post(PREVIEW_PATH, preview)
    app.router.add_get("/neighbourhood/drafts/{draft}/{index}", draft_item)
    app.router.add_post("/neighbourhood/drafts/{draft}/post", post_draft)
    app.router.add_post("/neighbourhood/drafts/{draft}/discard", discard_draft)
