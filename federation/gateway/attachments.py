"""The gateway's side of alert photos: the author uploads, the alert's recipients fetch.

``AttachmentService`` lives inside ``Gateway`` (federation/gateway/app.py) and owns the
``PhotoStore``. Both routes are hop-signed by a member hub. An upload is accepted only from
the hub that posted the alert, only for a JPEG or PNG the signed alert lists with this
SHA-256 and size, and only while the alert lives; a fetch only by a hub the alert was relayed
to. docs/protocol.md ("Alert photos") specifies both routes. Every rejection is a 4xx with one
reason, and nothing of a rejected upload is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from federation.errors import MalformedMessage, SchemaError
from federation.gateway.core import GatewayCore
from federation.gateway.errors import (
    AttachmentNotListed,
    AttachmentNotUploaded,
    LengthRequired,
    NotAPhoto,
    NotAuthor,
    NotRecipient,
    StoreFull,
    UnknownAlert,
)
from federation.gateway.photo_relay import (
    CHUNK,
    PHOTO_TYPES,
    PendingPhoto,
    PhotoStore,
    is_sha256_hex,
    sweep_orphan_photos,
)
from federation.gateway.store import Member
from federation.hop import HopDigestError, parse_content_digest
from federation.jws import loads_json_object, split_compact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListedPhoto:
    """A photo a live alert lists, and whether the gateway holds its bytes."""

    alert_id: str
    author: str
    sha256: str
    size: int
    media_type: str
    expires_at: float
    held: bool


def listed_attachments(token: str) -> list[dict[str, Any]]:
    """Return the attachments a stored (already verified) alert lists."""
    claims = loads_json_object(split_compact(token).payload, name="payload")
    attachments = claims.get("attachments", [])
    return attachments if isinstance(attachments, list) else []


def _live_alert(db: sqlite3.Connection, alert_id: str, now: float) -> tuple[str, str, float]:
    row = db.execute(
        "SELECT author, token, expires_at FROM alerts WHERE id = ? AND expires_at >= ?",
        (alert_id, now),
    ).fetchone()
    if row is None:
        raise UnknownAlert(
            f"no live alert has id {alert_id[:16]}... at this gateway: it expired, was "
            "withdrawn, or was never posted here"
        )
    return row[0], row[1], row[2]


def listed_photo(
    db: sqlite3.Connection, alert_id: str, sha256: str, now: float, *, author: str | None = None
) -> ListedPhoto:
    """Return the photo a live alert (by author, if given) lists under this SHA-256, or raise."""
    posted_by, token, expires_at = _live_alert(db, alert_id, now)
    if author is not None and posted_by != author:
        # Before the listing, so a hub learns nothing about another hub's alert.
        raise NotAuthor("only the hub that posted an alert may upload its photos")
    for item in listed_attachments(token):
        if isinstance(item, dict) and item.get("sha256") == sha256:
            held = db.execute(
                "SELECT 1 FROM alert_attachments WHERE alert_id = ? AND sha256 = ?",
                (alert_id, sha256),
            ).fetchone()
            return ListedPhoto(
                alert_id=alert_id,
                author=posted_by,
                sha256=sha256,
                size=int(item["size"]),
                media_type=str(item["type"]),
                expires_at=expires_at,
                held=held is not None,
            )
    raise AttachmentNotListed(
        f"alert {alert_id[:16]}... lists no attachment with SHA-256 {sha256[:16]}..."
    )


def photo_bytes_held(db: sqlite3.Connection) -> int:
    """Return the total size of every photo held."""
    (total,) = db.execute("SELECT coalesce(sum(size), 0) FROM alert_attachments").fetchone()
    return int(total)


def is_alert_recipient(db: sqlite3.Connection, alert_id: str, hub: str) -> bool:
    """Tell whether an alert was relayed to a hub."""
    row = db.execute(
        "SELECT 1 FROM alert_recipients WHERE alert_id = ? AND hub = ?", (alert_id, hub)
    ).fetchone()
    return row is not None


class AttachmentService:
    """Alert photos: upload by the author, fetch by the alert's recipients, expiry with it."""

    def __init__(self, gateway: GatewayCore) -> None:
        self.gateway = gateway
        assert gateway.store is not None
        self.store = gateway.store
        self.settings = gateway.settings
        self.photos = PhotoStore(gateway.data_dir)

    def close(self) -> None:
        """Stop the photo store's threads."""
        self.photos.close()

    def add_routes(self, app: web.Application) -> None:
        """Register the upload and fetch routes."""
        path = "/v1/alerts/{alert_id}/attachments/{sha256}"
        app.router.add_post(path, self.handle_upload)
        app.router.add_get(path, self.handle_fetch)

    async def _read(self, fn: Any, *args: Any) -> Any:
        def call() -> Any:
            with self.store.read() as db:
                return fn(db, *args)

        return await self.gateway._db(call)

    async def sweep(self) -> int:
        """Delete the files of photos whose alerts are gone; return how many."""
        return await self.gateway._db(sweep_orphan_photos, self.store, self.gateway.data_dir)

    @staticmethod
    def _names(request: web.Request) -> tuple[str, str]:
        alert_id = request.match_info["alert_id"]
        sha256 = request.match_info["sha256"]
        if not is_sha256_hex(sha256):
            raise SchemaError(
                "a photo is named by the lower-case hex SHA-256 of its bytes",
                reason="bad_sha256",
                field="sha256",
            )
        if not is_sha256_hex(alert_id):
            raise UnknownAlert(f"no alert has id {alert_id[:64]!r}: an alert id is a SHA-256")
        return alert_id, sha256

    # -- upload -----------------------------------------------------------------------------

    async def handle_upload(self, request: web.Request) -> web.Response:
        """POST /v1/alerts/{alert_id}/attachments/{sha256}: the author uploads a photo."""
        alert_id, sha256 = self._names(request)
        # The body streams to disk; the signature covers its Content-Digest, which must name
        # this photo, and the body is checked against it as it arrives.
        member = await self.gateway.authenticate(request, None)
        digests = parse_content_digest(request.headers.get("Content-Digest"))
        if digests["sha-256"] != bytes.fromhex(sha256):
            raise HopDigestError(
                "the signed Content-Digest is not the SHA-256 the photo is named by",
                reason="digest_mismatch",
            )
        now = self.gateway.clock()

        def precheck(db: sqlite3.Connection) -> tuple[ListedPhoto, int]:
            listed = listed_photo(db, alert_id, sha256, now, author=member.kid)
            return listed, photo_bytes_held(db)

        listed, held = await self._read(precheck)
        # The listed type decides, before a byte is read: never video, never anything else.
        if listed.media_type not in PHOTO_TYPES:
            raise NotAPhoto(
                f"the alert lists this attachment as {listed.media_type}; the gateway relays "
                "JPEG and PNG photos only, never video. Neighbours on the LAN fetch it from "
                "the author's hub"
            )
        limit = self.settings.max_attachment_bytes
        if listed.size > limit:
            raise MalformedMessage(
                f"a photo may be at most {limit} bytes at this gateway; the alert lists "
                f"{listed.size}",
                reason="too_large",
            )
        length = request.content_length
        if length is None:
            raise LengthRequired("send the photo with a Content-Length")
        if length != listed.size:
            raise SchemaError(
                f"the alert lists this photo with {listed.size} bytes; the upload has {length}",
                reason="wrong_size",
                field="size",
            )
        if listed.held:
            return self._stored(listed, status=200)
        if held + length > self.settings.max_attachment_store_bytes:
            raise StoreFull(
                "the gateway holds as many photos as it may; try again once older alerts "
                "have expired"
            )
        pending = await self.photos.receive(
            alert_id,
            sha256,
            request.content.iter_chunked(CHUNK),
            length=length,
            media_type=listed.media_type,
            signed_digests=digests,
        )
        try:
            kept = await self.gateway._db(self._commit, pending, member)
        except BaseException:
            await asyncio.shield(self.photos.discard(pending))
            raise
        if not kept:
            # The same photo arrived twice at once; the first copy is the one kept.
            await self.photos.discard(pending)
            return self._stored(listed, status=200)
        log.info("hub %s uploaded photo %s of alert %s", member.kid, sha256[:12], alert_id[:12])
        return self._stored(listed, status=201)

    def _commit(self, pending: PendingPhoto, member: Member) -> bool:
        now = self.gateway.clock()
        with self.store.transaction() as db:
            # Again, now: the alert may have expired or been withdrawn during the upload.
            listed = listed_photo(db, pending.alert_id, pending.sha256, now, author=member.kid)
            if listed.held:
                return False
            if photo_bytes_held(db) + pending.size > self.settings.max_attachment_store_bytes:
                raise StoreFull(
                    "the gateway holds as many photos as it may; try again once older alerts "
                    "have expired"
                )
            db.execute(
                "INSERT INTO alert_attachments (alert_id, sha256, size, type, uploaded_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (pending.alert_id, pending.sha256, pending.size, pending.media_type, now),
            )
            # Last, so the file appears only with its row (sweep_orphan_photos relies on it).
            self.photos.place(pending)
        return True

    @staticmethod
    def _stored(listed: ListedPhoto, *, status: int) -> web.Response:
        return web.json_response(
            {
                "sha256": listed.sha256,
                "size": listed.size,
                "type": listed.media_type,
                "expires": listed.expires_at,
            },
            status=status,
        )

    # -- fetch ------------------------------------------------------------------------------

    async def handle_fetch(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/alerts/{alert_id}/attachments/{sha256}: a recipient fetches a photo."""
        alert_id, sha256 = self._names(request)
        body = await self.gateway._read_body(request)
        member = await self.gateway.authenticate(request, body)
        now = self.gateway.clock()

        def check(db: sqlite3.Connection) -> ListedPhoto:
            _live_alert(db, alert_id, now)
            if not is_alert_recipient(db, alert_id, member.kid):
                raise NotRecipient(
                    "this alert was not relayed to this hub, so it may not fetch its photos"
                )
            listed = listed_photo(db, alert_id, sha256, now)
            if not listed.held:
                raise AttachmentNotUploaded(
                    "the alert's author has not uploaded this photo (yet); try again later"
                )
            return listed

        listed = await self._read(check)
        response = web.StreamResponse(
            headers={
                "Content-Type": listed.media_type,
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            }
        )
        try:
            chunks = self.photos.read_chunks(alert_id, sha256)
            first = await anext(chunks, b"")
        except FileNotFoundError as err:
            # Swept between the check and the read: the alert is gone.
            raise UnknownAlert(f"alert {alert_id[:16]}... expired or was withdrawn") from err
        response.content_length = listed.size
        await response.prepare(request)
        try:
            await response.write(first)
            async for chunk in chunks:
                await response.write(chunk)
            await response.write_eof()
        except (ConnectionError, RuntimeError) as err:
            log.info("download of photo %s cut off: %s", sha256[:12], err)
        finally:
            with contextlib.suppress(Exception):
                await chunks.aclose()
        return response
