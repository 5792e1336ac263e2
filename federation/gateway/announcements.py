"""The gateway's side of agency announcements: intake, storage until exp, relay to hubs.

``AnnouncementService`` lives inside ``Gateway`` (federation/gateway/app.py) and takes the
registry from the ``RequestService``. An agency posts one signed announcement; the gateway
checks it under the current registry (``federation.announcements.check_announcement_jws``),
then in one transaction the replay, the agency's quota, the announcement and its queue
entries: to the members whose cell may touch its ``area``, or to every member without one.
It is pushed on the per-hub stream as kind ``announcement`` with no key: hubs verify it under
their own pinned registry. docs/agency-protocol.md ("Announcements") is the specification.
Nothing of a rejected announcement is stored or relayed.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from federation.announcements import check_announcement_jws
from federation.cells import cells_covering_circle
from federation.gateway.core import GatewayCore
from federation.gateway.errors import NoRegistry
from federation.gateway.store import GatewayStore, Replay
from federation.registry import VerifiedRegistry
from federation.wire import encode_announcement_frame, parse_token_body

log = logging.getLogger(__name__)


def add_announcement(
    store: GatewayStore,
    db: sqlite3.Connection,
    *,
    announcement_id: str,
    agency: str,
    token: str,
    category: str,
    replay: Replay,
    expires_at: float,
    cells: Iterable[str] | None,
    limit: int,
    now: float,
) -> list[tuple[str, int]]:
    """Inside a transaction: store an announcement and queue it; return (kid, seq) pairs."""
    # Replay first, so a repost of the same bytes is "replay" even when the quota is full.
    store.remember_in(db, replay, now)
    store.hit_in(db, agency, "agency_announcements", limit=limit, window_s=3600.0, now=now)
    db.execute(
        "INSERT INTO announcements (id, agency, jti, category, token, received_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (announcement_id, agency, replay.jti, category, token, now, expires_at),
    )
    db.execute(
        "INSERT INTO announcement_tallies (agency, count) VALUES (?, 1)"
        " ON CONFLICT (agency) DO UPDATE SET count = count + 1",
        (agency,),
    )
    if cells is None:
        recipients = db.execute(
            "UPDATE members SET last_seq = last_seq + 1"
            " WHERE kid NOT IN (SELECT kid FROM blocked) RETURNING kid, last_seq"
        ).fetchall()
    else:
        chosen = sorted(set(cells))
        marks = ",".join("?" * len(chosen))
        recipients = db.execute(
            f"UPDATE members SET last_seq = last_seq + 1 WHERE cell IN ({marks})"
            " AND kid NOT IN (SELECT kid FROM blocked) RETURNING kid, last_seq",
            chosen,
        ).fetchall()
    db.executemany(
        "INSERT INTO announcement_deliveries (hub, seq, announcement_id) VALUES (?, ?, ?)",
        [(kid, seq, announcement_id) for kid, seq in recipients],
    )
    return [(kid, seq) for kid, seq in recipients]


def withdraw_unlisted(db: sqlite3.Connection, listed: Iterable[str]) -> int:
    """Delete the announcements of agencies a new registry no longer lists; return how many."""
    kids = sorted(set(listed))
    marks = ",".join("?" * len(kids))
    where = f"agency NOT IN ({marks})" if kids else "1"
    return db.execute(f"DELETE FROM announcements WHERE {where}", kids).rowcount


def announcement_tallies(db: sqlite3.Connection) -> dict[str, int]:
    """Return per agency kid the number of announcements this gateway accepted."""
    return dict(db.execute("SELECT agency, count FROM announcement_tallies").fetchall())


class AnnouncementService:
    """Agency announcements: intake, storage until exp, relay on the hubs' streams."""

    def __init__(self, gateway: GatewayCore) -> None:
        self.gateway = gateway
        assert gateway.store is not None
        self.store = gateway.store
        self.settings = gateway.settings

    def add_routes(self, app: web.Application) -> None:
        """Register the announcement route."""
        app.router.add_post("/v1/announcements", self.handle_post)

    async def handle_post(self, request: web.Request) -> web.Response:
        """POST /v1/announcements: check an agency's announcement, store and relay it."""
        body = await self.gateway._read_body(request)
        token = parse_token_body(body, what="announcement")
        return web.json_response(await self.accept(token), status=201)

    async def accept(self, token: str) -> dict[str, Any]:
        """Check, store and relay one announcement; return the intake answer."""
        requests = self.gateway.requests
        registry = requests.registry if requests is not None else None
        if requests is None or registry is None:
            raise NoRegistry(
                "this gateway has no agency registry yet; no agency can post announcements"
            )
        now = self.gateway.clock()
        checked = check_announcement_jws(
            token,
            registry=registry,
            audience=self.gateway.kid,
            now=now,
            ever_listed=requests.ever_listed,
        )
        claims = checked.claims
        area = claims.area
        cells = None if area is None else cells_covering_circle(area.lat, area.lon, area.radius_m)
        announcement_id = checked.id
        raw = checked.message.token
        expires_at = min(float(claims.exp), now + self.settings.alert_ttl_s)

        def record() -> list[tuple[str, int]]:
            with self.store.transaction() as db:
                return add_announcement(
                    self.store,
                    db,
                    announcement_id=announcement_id,
                    agency=checked.agency.kid,
                    token=raw,
                    category=claims.category,
                    replay=Replay(checked.agency.kid, claims.jti, claims.exp),
                    expires_at=expires_at,
                    cells=cells,
                    limit=self.settings.agency_announcements_per_hour,
                    now=now,
                )

        recipients = await self.gateway._db(record)
        live = self.gateway.streams.offer(
            recipients, lambda seq: encode_announcement_frame(seq, announcement_id, raw)
        )
        log.info(
            "announcement %s from %s queued for %s hubs (%s live)",
            announcement_id[:12],
            checked.agency.name,
            len(recipients),
            live,
        )
        return {"id": announcement_id, "expires": expires_at}

    async def withdraw_unlisted(self, registry: VerifiedRegistry) -> int:
        """Withdraw the announcements of agencies the registry no longer lists."""

        def withdraw() -> int:
            with self.store.transaction() as db:
                return withdraw_unlisted(db, registry.agencies)

        withdrawn = await self.gateway._db(withdraw)
        if withdrawn:
            log.info("withdrew %s announcements of agencies no longer listed", withdrawn)
        return withdrawn
