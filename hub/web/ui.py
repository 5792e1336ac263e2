"""The owner's web UI: the application shell every page shares.

Pages are rendered on the server with Jinja2 (autoescaped); the few scripts and the one style
sheet ship inside the package (hub/web/static), so the UI works on a LAN with no internet and
no build step. This module holds what every page needs: templates, the security headers and
Content-Security-Policy, sign-in and sessions, CSRF checks, roles, and the live-update stream.
Each group of pages lives in a module of its own and adds its routes with `setup(app)`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from aiohttp import BodyPartReader, web

from hub.errors import PassphraseError
from hub.household import unlock_household_identity
from hub.jobs import JobBoard
from hub.people import HOUSEHOLD, OWNER
from hub.web.sessions import LoginGuard, Session, SessionStore

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
SESSION_COOKIE = "porchlight_session"
LOGIN_COOKIE = "porchlight_login"
MAX_FORM_BYTES = 64 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; font-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'; manifest-src 'self'")
PUBLIC_PATHS = ("/login", "/static/", "/healthz")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSIONS = web.AppKey("sessions", SessionStore)
GUARD = web.AppKey("login_guard", LoginGuard)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
HUB = web.AppKey("hub_object", object)
LIVE = web.AppKey("live", object)
# Paths that take a multipart upload larger than the app's body limit, with their own limit.
UPLOADS = web.AppKey("uploads", dict)
# Paths whose multipart upload is held in memory only (read_memory_form), each with its limit
# and the refusal of a larger file: aiohttp's request.post() spools a file to a temp file, and
# footage must never reach the disk as plaintext.
MEMORY_UPLOADS = web.AppKey("memory_uploads", dict)
# The background jobs pages start (hub.jobs): cancelled and awaited when the app shuts down.
JOBS = web.AppKey("jobs", JobBoard)


def templates() -> jinja2.Environment:
    """Return the Jinja2 environment of the UI's templates (autoescaped)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["plural"] = lambda n, word: f"{n} {word}" if n == 1 else f"{n} {word}s"
    return env


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """Render a page template for this request's session."""
    session: Session | None = request.get("session")
    hub = request.app[HUB]
    body = request.app[TEMPLATES].get_template(template).render(
        session=session, hub_name=hub.config.hub.name, path=request.path, **context)
    return web.Response(text=body, status=status, content_type="text/html")


def session_of(request: web.Request) -> Session:
    """Return the request's session (the auth middleware guarantees one on private pages)."""
    session = request.get("session")
    if session is None:
        raise web.HTTPUnauthorized(text="sign in first")
    return session


def owner_only(handler: Handler) -> Handler:
    """Let only an owner through; anyone else gets 403, whatever the way in."""

    @wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        if not session_of(request).is_owner:
            raise web.HTTPForbidden(text="only an owner may do this")
        return await handler(request)

    return checked


def check_camera(request: web.Request, camera: str) -> None:
    """Refuse a camera the session may not see, or that does not exist (the same answer)."""
    hub = request.app[HUB]
    names = {c.name for c in hub.config.cameras} | set(hub.vault.cameras())
    if camera not in names or not session_of(request).sees(camera):
        raise web.HTTPNotFound(text="no such camera")


def visible_cameras(request: web.Request) -> list:
    """Return the configured cameras this session may see."""
    session = session_of(request)
    return [c for c in request.app[HUB].config.cameras if session.sees(c.name)]


async def read_form(request: web.Request) -> dict[str, str]:
    """Read a small urlencoded form, refusing anything larger than MAX_FORM_BYTES."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_FORM_BYTES, request.content_length)
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@dataclass
class MemoryForm:
    """A multipart form read into memory: its text fields and its files (name, bytes)."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


async def read_memory_form(request: web.Request) -> MemoryForm:
    """Read a MEMORY_UPLOADS path's multipart form into memory, within the path's limit."""
    if "memory_form" in request:
        return request["memory_form"]
    limit, too_large = request.app[MEMORY_UPLOADS][request.path]
    if request.content_type != "multipart/form-data":
        raise web.HTTPBadRequest(text="send the form as multipart/form-data")
    if request.content_length is not None and request.content_length > limit + MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(limit, request.content_length, text=too_large)
    form = MemoryForm()
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            raise web.HTTPBadRequest(text="the form holds a part without a name")
        cap = limit if part.filename is not None else MAX_FORM_BYTES
        data = bytearray()
        while chunk := await part.read_chunk(1 << 20):
            data += chunk
            if len(data) > cap:
                if part.filename is not None:
                    raise web.HTTPRequestEntityTooLarge(limit, len(data), text=too_large)
                raise web.HTTPRequestEntityTooLarge(MAX_FORM_BYTES, len(data))
        if part.filename is not None:
            form.files[part.name] = (part.filename, bytes(data))
        else:
            form.fields[part.name] = data.decode("utf-8", errors="replace")
    request["memory_form"] = form
    return form


def _origin_ok(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        # No Origin: an old browser or a non-browser client; the CSRF token still decides.
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.host and parts.scheme == request.scheme


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Add the security headers to every answer, and turn errors into plain answers."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on its own
    # form posts, and the Origin check below could no longer tell them from a forged one.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    if request.secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if not request.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException) and response.status >= 400 and not response.prepared:
        if response.status == 401 and request.method == "GET" and _wants_html(request):
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}",
                                   headers={"Cache-Control": "no-store"})
        return response
    if isinstance(response, web.HTTPException):
        raise response
    return response


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Find the session; refuse private paths without one, and changes without a CSRF token."""
    sessions = request.app[SESSIONS]
    session = sessions.get(request.cookies.get(SESSION_COOKIE))
    request["session"] = session
    public = any(request.path == p or (p.endswith("/") and request.path.startswith(p))
                 for p in PUBLIC_PATHS)
    if not public and session is None:
        raise web.HTTPUnauthorized(text="sign in first")
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.path != "/login":
        if session is not None and (limit := request.app[UPLOADS].get(request.path)):
            request = request.clone(client_max_size=limit)
        if not _origin_ok(request):
            raise web.HTTPForbidden(text="cross-origin request refused")
        token = request.headers.get("X-CSRF-Token")
        if token is None and session is not None and request.path in request.app[MEMORY_UPLOADS]:
            token = (await read_memory_form(request)).fields.get("csrf")
        elif token is None and request.content_type in ("application/x-www-form-urlencoded",
                                                      "multipart/form-data"):
            token = (await request.post()).get("csrf")
        if session is None or not isinstance(token, str) or not hmac.compare_digest(
                token.encode(), session.csrf.encode()):
            raise web.HTTPForbidden(text="the form is out of date or forged (no valid CSRF token)")
    return await handler(request)


# -- sign in and out --------------------------------------------------------------------------

async def login_page(request: web.Request) -> web.Response:
    """Show the sign-in form, with a fresh login CSRF token in a cookie and the form."""
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", error=None, token=token,
                      next=_safe_next(request.query.get("next", "/")), name="")
    _set_cookie(request, response, LOGIN_COOKIE, token, max_age=600)
    return response


def _safe_next(value: str) -> str:
    # Only a local path: never an open redirect to another host.
    return value if value.startswith("/") and not value.startswith("//") else "/"


def client_address(request: web.Request) -> str:
    """Return the client's address, as the sign-in lockout counts it."""
    return request.remote or "unknown"


async def login(request: web.Request) -> web.StreamResponse:
    """Unlock the person's key with their passphrase and start a session."""
    form = await read_form(request)
    name = form.get("name", "").strip().lower()[:64] or HOUSEHOLD
    passphrase = form.get("passphrase", "")[:1024]
    next_path = _safe_next(form.get("next", "/"))
    cookie_token = request.cookies.get(LOGIN_COOKIE, "")
    if not _origin_ok(request) or not cookie_token or not hmac.compare_digest(
            form.get("csrf", "").encode(), cookie_token.encode()):
        raise web.HTTPForbidden(text="the sign-in form is out of date or forged; reload it")
    guard = request.app[GUARD]
    address = client_address(request)

    def again(message: str, status: int) -> web.Response:
        response = render(request, "login.html", status=status, error=message,
                          token=cookie_token, next=next_path, name=name)
        return response

    wait = guard.wait_s(name, address)
    if wait > 0:
        return again(f"Too many failed sign-ins: try again in {int(wait + 0.999)} s.", 429)
    hub = request.app[HUB]
    async with guard.unlocking:
        # Checked again: other attempts may have failed while this one waited its turn.
        wait = guard.wait_s(name, address)
        if wait > 0:
            return again(f"Too many failed sign-ins: try again in {int(wait + 0.999)} s.", 429)
        try:
            identity, role, cameras = await asyncio.to_thread(unlock, hub, name, passphrase)
        except PassphraseError:
            guard.failed(name, address)
            log.info("web: failed sign-in for %s from %s", name, address)
            return again("Wrong name or passphrase.", 401)
    guard.succeeded(name, address)
    session = request.app[SESSIONS].create(name, role, cameras, identity)
    log.info("web: %s signed in from %s", name, address)
    response = web.HTTPSeeOther(next_path)
    _set_cookie(request, response, SESSION_COOKIE, session.token)
    response.del_cookie(LOGIN_COOKIE, path="/")
    return response


def unlock(hub, name: str, passphrase: str):
    """Open a person's key (the household's for "owner"): (identity, role, cameras or None)."""
    if not passphrase:
        raise PassphraseError("empty passphrase")
    if name == HOUSEHOLD:
        return unlock_household_identity(hub.data, passphrase), OWNER, None
    person = hub.people.get(name)
    if person is None:
        # Spend the same scrypt work as a real account, so a name's existence does not show.
        hub.people.unlock(name, passphrase)
        raise PassphraseError("wrong name or passphrase")
    identity = hub.people.unlock(name, passphrase)
    cameras = None if person.role == OWNER else frozenset(person.cameras)
    return identity, person.role, cameras


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session and wipe its key."""
    session = session_of(request)
    request.app[SESSIONS].end(session.token)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
                max_age: int | None = None) -> None:
    response.set_cookie(name, value, httponly=True, samesite="Strict", secure=request.secure,
                        path="/", max_age=max_age)


# -- live updates -----------------------------------------------------------------------------

class LiveFeed:
    """Fan the hub's events out to the browsers' Server-Sent Events streams."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queues: set[asyncio.Queue] = set()

    def publish(self, event: dict) -> None:
        """Queue an event for every open stream; safe from any thread."""
        self.loop.call_soon_threadsafe(self._offer, event)

    def _offer(self, event: dict) -> None:
        for queue in list(self.queues):
            if queue.qsize() < 100:
                queue.put_nowait(event)


def visible_event(session: Session, event: dict) -> dict | None:
    """Return what a session may learn of an event: only kinds, ids and its own cameras."""
    kind = event.get("kind")
    camera = event.get("camera")
    if camera is not None and not session.sees(camera):
        return None
    if kind == "request" and not session.is_owner:
        return None
    return {"kind": kind, "camera": camera}


async def live_stream(request: web.Request) -> web.StreamResponse:
    """Stream the hub's events (SSE) to a page that updates itself when one arrives."""
    session = session_of(request)
    feed: LiveFeed = request.app[LIVE]
    queue: asyncio.Queue = asyncio.Queue()
    feed.queues.add(queue)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    try:
        await response.write(b": connected\n\n")
        while request.app[SESSIONS].get(session.token) is session:
            try:
                event = await asyncio.wait_for(queue.get(), 15.0)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            shown = visible_event(session, event)
            if shown is not None:
                await response.write(f"data: {json.dumps(shown)}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        feed.queues.discard(queue)
    return response


# -- the application --------------------------------------------------------------------------

def setup(app: web.Application, hub) -> None:
    """Add the UI's shell to the hub's application: middlewares, sign-in, live updates, static files."""
    app[HUB] = hub
    app[TEMPLATES] = templates()
    app[SESSIONS] = SessionStore(hub.config.web.idle_minutes * 60.0)
    app[GUARD] = LoginGuard()
    app[UPLOADS] = {}
    app[MEMORY_UPLOADS] = {}
    app[JOBS] = JobBoard(clock=hub.clock)
    app.middlewares.extend([security_middleware, auth_middleware])
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/live", live_stream)
    app.router.add_static("/static/", HERE / "static")

    async def start_feed(app: web.Application) -> None:
        app[LIVE] = LiveFeed(asyncio.get_running_loop())
        hub.listeners.append(app[LIVE].publish)

    async def stop(app: web.Application) -> None:
        if app[LIVE].publish in hub.listeners:
            hub.listeners.remove(app[LIVE].publish)
        await app[JOBS].close()
        app[SESSIONS].end_all()

    app.on_startup.append(start_feed)
    app.on_shutdown.append(stop)
