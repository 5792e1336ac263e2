"""The gateway's side of agency requests: registry, intake, routing, answers, sealed clips.

``RequestService`` lives inside ``Gateway`` (federation/gateway/app.py) and owns the
transparency log, the log committer and the clip store. docs/agency-protocol.md specifies
every route here. Every rejection is a 4xx with one reason, and nothing of a rejected message
is logged, stored or routed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from federation.answers import verify_answer
from federation.cells import cells_covering_circle
from federation.errors import FederationError, MalformedMessage, SchemaError
from federation.gateway import request_store as rs
from federation.gateway.announcements import announcement_tallies
from federation.gateway.core import GatewayCore
from federation.gateway.errors import (
    ClipGone,
    GatewayError,
    HubBlocked,
    LengthRequired,
    NotYourRequest,
    StoreFull,
    UnknownRequest,
    error_response,
)
from federation.gateway.log import GatewayLog, LogCommitter, LogRoutes
from federation.gateway.registry_page import PAGE_HEADERS, render_public_page
from federation.gateway.relay import CHUNK, ClipStore
from federation.gateway.store import Replay
from federation.gateway.witnessing import Witnessing
from federation.hop import HopDigestError, HopUnknownKey, parse_content_digest
from federation.neighbourhood_log import REQUEST_ID, SHA256_HEX, peek_entry
from federation.registry import (
    AgencyEntry,
    RegistryError,
    RegistryRollback,
    VerifiedRegistry,
    verify_registry,
)
from federation.request_rules import check_request_jws
from federation.wire import encode_request_frame, parse_registry_upload, parse_token_body

log = logging.getLogger(__name__)

AUTHORITY_JWK_META = "authority_jwk"


def _jwk_json(jwk: dict[str, str]) -> str:
    return json.dumps(jwk, separators=(",", ":"), sort_keys=True)


def _sealed(claims: dict[str, Any]) -> list[str]:
    """Return the SHA-256 of every sealed file a (verified) answer lists, custody last."""
    named = [clip["sha256"] for clip in claims.get("clips", [])]
    if claims.get("custody"):
        named.append(claims["custody"]["sha256"])
    return named


def _registry_agencies(registry: VerifiedRegistry) -> dict[str, dict[str, Any]]:
    return {
        kid: {
            "jwk": agency.jwk,
            "name": agency.name,
            "jurisdiction": agency.jurisdiction_text,
            "since": agency.since,
            "contact": agency.contact,
        }
        for kid, agency in registry.agencies.items()
    }


class LongTermKey(GatewayError):
    """An answer is signed by a member's long-term key instead of a one-time key."""

    default_reason = "long_term_key"


class WrongRequest(GatewayError):
    """An answer names another request than the one it is posted to."""

    default_reason = "wrong_request"


class RequestService:
    """Registry, request intake and routing, answers and the sealed-clip relay."""

    def __init__(self, gateway: GatewayCore) -> None:
        self.gateway = gateway
        assert gateway.key is not None and gateway.store is not None
        self.store = gateway.store
        self.settings = gateway.settings
        self.limits = gateway.settings.scope_limits()
        self.log = GatewayLog(gateway.data_dir, gateway.key)
        self.clips = ClipStore(gateway.data_dir)
        self.committer = LogCommitter(self.log, self.store, self._run)
        self.committer.on_failure = self._after_failed_commit
        self.witnessing = Witnessing(
            self.log.tiles,
            list(self.settings.witnesses),
            self._run,
            timeout_s=self.settings.witness_timeout_s,
        )
        self.committer.on_append = self.witnessing.notify
        self._routing: set[asyncio.Task[None]] = set()
        self.routes = LogRoutes(
            self.log, self._entry_keys, self._run, checkpoint=lambda: self.witnessing.published
        )
        self.registry: VerifiedRegistry | None = None
        self.ever_listed: set[str] = set()

    async def _run(self, fn: Callable[[], Any]) -> Any:
        return await self.gateway._db(fn)

    async def _read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            with self.store.read() as db:
                return fn(db, *args, **kwargs)

        return await self._run(call)

    async def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            with self.store.transaction() as db:
                return fn(db, *args, **kwargs)

        return await self._run(call)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Index log entries the database lacks, load the registry, start the committer."""
        indexed = await self._run(self.reindex)
        if indexed:
            log.warning("indexed %s log entries the database had lost", indexed)
        await self._load_registry()
        self.committer.start()
        self.witnessing.start()

    async def stop(self) -> None:
        """Stop the committer and the clip store's threads."""
        for task in self._routing:
            task.cancel()
        await asyncio.gather(*self._routing, return_exceptions=True)
        await self.witnessing.stop()
        await self.committer.stop()
        self.clips.close()

    def _after_failed_commit(self) -> None:
        # The log may hold entries the database rolled back; index them before anything else.
        asyncio.get_running_loop().create_task(self._reindex_later(), name="gateway-reindex")

    async def _reindex_later(self) -> None:
        with contextlib.suppress(Exception):
            await self._run(self.reindex)

    def reindex(self) -> int:
        """Index every log entry past the database's index (after a crash); return how many."""
        now = self.gateway.clock()
        with self.store.transaction() as db:
            start = rs.indexed_size(db)
            for index in range(start, self.log.size):
                self._ingest(db, index, self.log.entry(index), now)
            return self.log.size - start

    def _ingest(self, db: sqlite3.Connection, index: int, entry: bytes, now: float) -> None:
        # Entries in the log were fully verified before they were appended: only read them.
        peeked = peek_entry(entry)
        token = entry.decode("ascii")
        claims = peeked.claims
        if peeked.kind == "registry":
            jwk_text = self.store.get_meta(AUTHORITY_JWK_META) or "{}"
            agencies = {
                a["kid"]: {
                    **{k: a[k] for k in ("jwk", "name", "jurisdiction", "since")},
                    "contact": a.get("contact") or "",
                }
                for a in claims["agencies"]
            }
            rs.ingest_registry(
                db,
                index,
                token=token,
                version=claims["version"],
                exp=claims["exp"],
                authority_kid=peeked.kid,
                authority_jwk=json.loads(jwk_text),
                agencies=agencies,
            )
        elif peeked.kind == "request":
            registry = rs.registry_before(db, index)
            jwk = registry.agencies.get(peeked.kid, {}).get("jwk", {}) if registry else {}
            area = claims["area"]
            rs.ingest_request(
                db,
                index,
                request_id=claims["jti"],
                agency=peeked.kid,
                agency_jwk=jwk,
                token=token,
                exp=claims["exp"],
                cells=cells_covering_circle(area["lat"], area["lon"], area["radius_m"]),
                now=now,
            )
        else:
            # The member who sent it is not in the log, by design: after a crash the answer
            # is held under its one-time key (its already_answered check still holds, by key).
            rs.ingest_answer(
                db,
                index,
                request_id=claims["request"],
                hub=peeked.kid,
                key_jwk=claims["key"],
                decision=claims["decision"],
                token=token,
                sealed=_sealed(claims),
                now=now,
            )

    async def _load_registry(self) -> None:
        row = await self._read(rs.current_registry)
        self.ever_listed = await self._read(rs.agencies_ever_listed)
        if row is None:
            return
        iat = peek_entry(row.token).claims["iat"]
        # Open it as of its own issue time: an expired registry stays loaded (and refuses
        # requests as registry_expired) until the authority publishes a new one.
        self.registry = verify_registry(
            row.token,
            authority_jwk=row.authority_jwk,
            authority_kid=self.settings.registry_key or "",
            audience=self.gateway.kid,
            now=iat,
        )

    async def purge(self, now: float) -> int:
        """Delete sealed clips past their time, forget closed answers' members; return clips."""
        forgotten = await self._write(rs.forget_answer_links, now)
        if forgotten:
            log.info("forgot which member sent %s answers to closed requests", forgotten)
        expired = await self._write(rs.expired_clips, now)
        for request_id, sha256 in expired:
            await self.clips._call(self.clips.delete, request_id, sha256)
        if expired:
            log.info("deleted %s sealed clips past their time", len(expired))
        return len(expired)

    # -- routes -----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Register the registry, request, answer, clip and log routes."""
        app.router.add_post("/v1/registry", self.handle_post_registry)
        app.router.add_get("/v1/registry", self.handle_get_registry)
        app.router.add_get("/v1/registry/summary", self.handle_registry_summary)
        app.router.add_get("/", self.handle_public_page)
        app.router.add_get("/registry", self.handle_public_page)
        app.router.add_post("/v1/requests", self.handle_post_request)
        app.router.add_get("/v1/requests/{id}/status", self.handle_status)
        app.router.add_get("/v1/requests/{id}/answers", self.handle_answers)
        app.router.add_post("/v1/requests/{id}/answers", self.handle_post_answer)
        app.router.add_post("/v1/requests/{id}/clips/{sha256}", self.handle_upload_clip)
        app.router.add_get("/v1/requests/{id}/clips/{sha256}", self.handle_get_clip)
        app.router.add_delete("/v1/requests/{id}/clips/{sha256}", self.handle_delete_clip)
        self.routes.add_routes(app)

    async def _entry_keys(self, start: int, end: int) -> dict[int, tuple[str, dict]]:
        return cast(dict, await self._read(rs.entry_keys, start, end))

    # -- registry ---------------------------------------------------------------------------

    async def handle_post_registry(self, request: web.Request) -> web.Response:
        """POST /v1/registry: accept a newer registry version from the pinned authority."""
        body = await self.gateway._read_body(request)
        upload = parse_registry_upload(body)
        if self.settings.registry_key is None:
            raise RegistryError(
                "this gateway was set up without --registry-key, so it accepts no registry; "
                "its operator must set registry_key in gateway.toml",
                reason="registry_not_configured",
            )
        jwk = upload.jwk.model_dump(exclude_none=True)
        jwk = {k: jwk[k] for k in ("kty", "crv", "x")}
        now = self.gateway.clock()
        verified = verify_registry(
            upload.registry,
            authority_jwk=jwk,
            authority_kid=self.settings.registry_key,
            audience=self.gateway.kid,
            now=now,
        )
        current = self.registry
        if current is not None and verified.token == current.token:
            row = await self._read(rs.current_registry)
            return web.json_response({"version": row.version, "log_index": row.log_index})
        if current is not None and verified.version <= current.version:
            raise RegistryRollback(
                f"registry version {verified.version} is not newer than version "
                f"{current.version} this gateway already serves"
            )
        if await self._run(functools.partial(self.store.get_meta, AUTHORITY_JWK_META)) is None:
            # Before the first append, so a re-index after a crash can attribute it.
            await self._run(
                functools.partial(self.store.set_meta, AUTHORITY_JWK_META, _jwk_json(jwk))
            )
        agencies = _registry_agencies(verified)

        def check(db: sqlite3.Connection) -> None:
            rs.check_registry(db, verified.version)

        def record(db: sqlite3.Connection, index: int) -> int:
            rs.ingest_registry(
                db,
                index,
                token=verified.token,
                version=verified.version,
                exp=verified.exp,
                authority_kid=verified.authority_kid,
                authority_jwk=jwk,
                agencies=agencies,
            )
            return index

        index = await self.committer.submit(verified.token.encode("ascii"), check, record)
        if self.registry is None or verified.version > self.registry.version:
            self.registry = verified
        self.ever_listed |= set(verified.agencies)
        if self.gateway.announcements is not None and self.registry is verified:
            # A removed agency's announcements stop being relayed at once.
            await self.gateway.announcements.withdraw_unlisted(verified)
        log.info(
            "registry version %s with %s agencies logged at %s",
            verified.version,
            len(verified.agencies),
            index,
        )
        return web.json_response({"version": verified.version, "log_index": index}, status=201)

    async def handle_get_registry(self, request: web.Request) -> web.Response:
        """GET /v1/registry: the current registry version and the authority's key."""
        row = await self._read(rs.current_registry)
        if row is None:
            return self.gateway_error(404, "this gateway has no agency registry yet", "no_registry")
        return web.json_response(
            {
                "registry": row.token,
                "authority_jwk": row.authority_jwk,
                "version": row.version,
                "log_index": row.log_index,
            }
        )

    @staticmethod
    def gateway_error(status: int, message: str, reason: str) -> web.Response:
        """Return an error answer in the gateway's shape."""

        return error_response(status, message, reason)

    def _summary(self, db: sqlite3.Connection) -> dict[str, Any]:
        current = rs.current_registry(db)
        counts = rs.tallies(db)
        announced = announcement_tallies(db)
        listed = dict(current.agencies) if current else {}
        known: dict[str, dict[str, Any]] = {}
        for (agencies,) in db.execute(
            "SELECT agencies FROM registry_versions ORDER BY version DESC"
        ):
            for kid, entry in json.loads(agencies).items():
                known.setdefault(kid, entry)
        rows = []
        for kid, entry in known.items():
            tally = counts.get(kid, {"requests": 0, "approvals": 0, "denials": 0})
            rows.append(
                {
                    "kid": kid,
                    "name": entry["name"],
                    "jurisdiction": entry["jurisdiction"],
                    "since": entry["since"],
                    "contact": entry["contact"],
                    "listed": kid in listed,
                    **tally,
                    "announcements": announced.get(kid, 0),
                }
            )
        rows.sort(key=lambda row: (not row["listed"], row["name"].casefold(), row["kid"]))
        return {
            "version": current.version if current else None,
            "expires": current.exp if current else None,
            "log_size": self.log.size,
            "agencies": rows,
        }

    async def handle_registry_summary(self, request: web.Request) -> web.Response:
        """GET /v1/registry/summary: agencies, their request counts and announcements."""
        return web.json_response(await self._read(self._summary))

    async def handle_public_page(self, request: web.Request) -> web.Response:
        """GET / (and /registry): the neighbourhood, its agencies and their requests, its log."""
        checkpoint = self.log.signed_checkpoint
        summary = await self._read(self._summary)
        page = render_public_page(
            summary,
            neighbourhood=self.settings.name,
            neighbourhood_id=self.gateway.kid,
            checkpoint=checkpoint,
            now=self.gateway.clock(),
        )
        return web.Response(
            text=page, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS
        )

    # -- intake -----------------------------------------------------------------------------

    async def handle_post_request(self, request: web.Request) -> web.Response:
        """POST /v1/requests: check an agency's request, log it and route it to hubs."""
        body = await self.gateway._read_body(request)
        token = parse_token_body(body, what="request")
        accepted = await self.accept_request(token)
        return web.json_response(accepted, status=201)

    async def accept_request(self, token: str) -> dict[str, Any]:
        """Check, log and route one agency request; return the intake answer."""
        registry = self.registry
        if registry is None:
            raise RegistryError(
                "this gateway has no agency registry yet; no agency can send requests",
                reason="no_registry",
            )
        now = self.gateway.clock()
        checked = check_request_jws(
            token,
            registry=registry,
            audience=self.gateway.kid,
            now=now,
            limits=self.limits,
            ever_listed=self.ever_listed,
        )
        claims = checked.claims
        area = claims.area
        cells = cells_covering_circle(area.lat, area.lon, area.radius_m)
        agency = checked.agency
        raw = checked.message.token

        def check(db: sqlite3.Connection) -> None:
            rs.check_request(
                db,
                self.store,
                request_id=claims.jti,
                agency=agency.kid,
                exp=claims.exp,
                limit=self.settings.agency_requests_per_hour,
                now=now,
            )

        def record(db: sqlite3.Connection, index: int) -> tuple[int, list[tuple[str, int]]]:
            recipients = rs.ingest_request(
                db,
                index,
                request_id=claims.jti,
                agency=agency.kid,
                agency_jwk=agency.jwk,
                token=raw,
                exp=claims.exp,
                cells=cells,
                now=now,
            )
            return index, recipients

        index, recipients = await self.committer.submit(raw.encode("ascii"), check, record)
        proof = await self._run(functools.partial(self.log.tlog_proof, index))
        if self.witnessing.enabled:
            # Route once the witnesses have cosigned a checkpoint holding it (or timed out),
            # so hubs that require cosignatures get them; the agency's answer does not wait.
            task = asyncio.create_task(
                self._route(recipients, claims.jti, raw, index, agency.name),
                name=f"gateway-route-{claims.jti}",
            )
            self._routing.add(task)
            task.add_done_callback(self._routing.discard)
        else:
            self._offer(recipients, claims.jti, raw, index, proof, agency.name)
        return {"id": claims.jti, "log_index": index, "proof": proof}

    async def _route(
        self, recipients: list[tuple[str, int]], request_id: str, raw: str, index: int, agency: str
    ) -> None:
        await self.witnessing.wait_published(
            index + 1, self.settings.witness_timeout_s * 2 + 1
        )
        proof = await self._run(functools.partial(self.witnessing.tlog_proof, index))
        self._offer(recipients, request_id, raw, index, proof, agency)

    def _offer(
        self,
        recipients: list[tuple[str, int]],
        request_id: str,
        raw: str,
        index: int,
        proof: str,
        agency: str,
    ) -> None:
        live = self.gateway.streams.offer(
            recipients, lambda seq: encode_request_frame(seq, request_id, raw, proof)
        )
        log.info(
            "request %s from %s logged at %s, routed to %s hubs (%s live)",
            request_id,
            agency,
            index,
            len(recipients),
            live,
        )

    def request_frames(self, rows: list[Any]) -> list[tuple[int, str]]:
        """Build stream frames for queued requests, each with a fresh tlog-proof."""
        return [
            (
                row.seq,
                encode_request_frame(
                    row.seq, row.alert_id, row.token, self.witnessing.tlog_proof(row.log_index)
                ),
            )
            for row in rows
        ]

    # -- agency calls -----------------------------------------------------------------------

    async def authenticate_agency(self, request: web.Request, body: bytes) -> AgencyEntry:
        """Verify an agency's hop signature under its registry key; return the agency."""
        gateway = self.gateway
        now = gateway.clock()
        sig = gateway._fresh_signature(request, now)
        registry = self.registry
        agency = registry.agencies.get(sig.keyid) if registry is not None else None
        if agency is None:
            raise HopUnknownKey(
                f"keyid {sig.keyid} is not an agency in this gateway's current registry",
            )
        gateway._verify_hop(request, body, sig, agency.jwk, now)
        await gateway._admit(sig, agency.kid, now)
        return agency

    async def _own_request(
        self, request: web.Request, body: bytes = b""
    ) -> tuple[AgencyEntry, rs.RequestRow]:
        agency = await self.authenticate_agency(request, body)
        request_id = request.match_info["id"]
        row = await self._read(rs.request_row, request_id)
        if row is None:
            raise UnknownRequest(f"no request has id {request_id[:64]} at this gateway")
        if row.agency != agency.kid:
            raise NotYourRequest("this request was sent by another agency")
        return agency, row

    async def handle_status(self, request: web.Request) -> web.Response:
        """GET /v1/requests/{id}/status: how many hubs were asked and how they answered."""
        body = await self.gateway._read_body(request)
        _, row = await self._own_request(request, body)
        counts = await self._read(rs.status_counts, row.id)
        return web.json_response({"id": row.id, "log_index": row.log_index, **counts})

    async def handle_answers(self, request: web.Request) -> web.Response:
        """GET /v1/requests/{id}/answers: the approving answers, with proofs and clip state."""
        body = await self.gateway._read_body(request)
        _, row = await self._own_request(request, body)

        def collect(db: sqlite3.Connection) -> list[dict[str, Any]]:
            # Never the member: the agency learns who approved only from the custody file.
            items = []
            for answer in rs.approved_answers(db, row.id):
                files = []
                for sha256 in _sealed(peek_entry(answer.token).claims):
                    clip = rs.clip_row(db, row.id, sha256)
                    held = clip is not None and self.clips.exists(row.id, sha256)
                    files.append(
                        {"sha256": sha256, "size": clip.size if held else None, "available": held}
                    )
                items.append(
                    {
                        "key": answer.key_kid,
                        "jws": answer.token,
                        "log_index": answer.log_index,
                        "proof": self.log.tlog_proof(answer.log_index),
                        "files": files,
                    }
                )
            return items

        return web.json_response({"answers": await self._read(collect)})

    async def _listed_clip(self, request: web.Request, body: bytes) -> tuple[str, str]:
        _, row = await self._own_request(request, body)
        sha256 = request.match_info["sha256"]
        clip = (
            await self._read(rs.clip_row, row.id, sha256) if SHA256_HEX.fullmatch(sha256) else None
        )
        if clip is None or not clip.listed or not self.clips.exists(row.id, sha256):
            raise ClipGone(
                f"the gateway holds no sealed clip {sha256[:64]} for this request; it was "
                "picked up, expired, or never listed by an approving answer"
            )
        return row.id, sha256

    async def handle_get_clip(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/requests/{id}/clips/{sha256}: download a sealed clip."""
        body = await self.gateway._read_body(request)
        request_id, sha256 = await self._listed_clip(request, body)
        response = web.StreamResponse(
            headers={"Content-Type": "application/octet-stream", "Cache-Control": "no-store"}
        )
        size = (await self._read(rs.clip_row, request_id, sha256)).size
        response.content_length = size
        await response.prepare(request)
        try:
            async for chunk in self.clips.read_chunks(request_id, sha256):
                await response.write(chunk)
            await response.write_eof()
        except (ConnectionError, RuntimeError) as err:
            # The agency went away mid-download; the clip stays for the next try.
            log.info("download of clip %s cut off: %s", sha256[:12], err)
            return response
        await self._write(
            rs.mark_fetched,
            request_id,
            sha256,
            now=self.gateway.clock(),
            keep_s=self.settings.clip_fetched_grace_s,
        )
        log.info("agency downloaded sealed clip %s of request %s", sha256[:12], request_id)
        return response

    async def handle_delete_clip(self, request: web.Request) -> web.Response:
        """DELETE /v1/requests/{id}/clips/{sha256}: the agency confirms pickup."""
        body = await self.gateway._read_body(request)
        request_id, sha256 = await self._listed_clip(request, body)
        await self._write(rs.delete_clip, request_id, sha256)
        await self.clips._call(self.clips.delete, request_id, sha256)
        log.info("agency picked up sealed clip %s of request %s", sha256[:12], request_id)
        return web.Response(status=204)

    # -- hub calls --------------------------------------------------------------------------

    def _request_id(self, request: web.Request) -> str:
        request_id = request.match_info["id"]
        if not REQUEST_ID.fullmatch(request_id):
            raise UnknownRequest(f"no request has id {request_id[:64]!r} at this gateway")
        return request_id

    async def handle_post_answer(self, request: web.Request) -> web.Response:
        """POST /v1/requests/{id}/answers: log a hub's signed decision."""
        body = await self.gateway._read_body(request)
        member = await self.gateway.authenticate(request, body)
        request_id = self._request_id(request)
        token = parse_token_body(body, what="answer")
        now = self.gateway.clock()
        # Signed by a one-time key that names no household; the hop signature says which
        # member sent it, and only this database keeps that, until the request closes.
        answer = verify_answer(token, audience=self.gateway.kid, now=now)
        claims = answer.claims
        if claims.request != request_id:
            raise WrongRequest(
                f"request: the answer is to {claims.request}, but was posted to {request_id}",
                reason="wrong_request",
            )
        if answer.kid == member.kid or await self._run(
            functools.partial(self.store.member, answer.kid)
        ):
            # A member's own key in the public log would name the household for good.
            raise LongTermKey(
                "the answer is signed by a member's own key; sign it with the one-time key "
                "for this request (federation/answers.py)"
            )
        existing = await self._read(rs.answer_row, request_id, member.kid)
        if existing is not None and existing.token == answer.token:
            # The same answer again (its first receipt was lost): the same receipt.
            return web.json_response(
                await self._run(functools.partial(self._receipt, existing.log_index))
            )
        sealed = answer.sealed
        replay = Replay(answer.kid, claims.jti, claims.exp)

        def check(db: sqlite3.Connection) -> None:
            rs.check_answer(
                db,
                self.store,
                request_id=request_id,
                hub=member.kid,
                key_kid=answer.kid,
                replay=replay,
                sealed=sealed,
                now=now,
            )

        def record(db: sqlite3.Connection, index: int) -> int:
            rs.ingest_answer(
                db,
                index,
                request_id=request_id,
                hub=member.kid,
                key_jwk=answer.jwk,
                decision=claims.decision,
                token=answer.token,
                sealed=sealed,
                now=now,
            )
            return index

        index = await self.committer.submit(answer.token.encode("ascii"), check, record)
        # The log line names the one-time key (public anyway), never the member.
        log.info("answer %s to request %s (%s) logged at %s", answer.kid, request_id,
                 claims.decision, index)
        return web.json_response(await self._run(functools.partial(self._receipt, index)),
                                 status=201)

    def _receipt(self, index: int) -> dict[str, Any]:
        """Return an answer's receipt: its index, the checkpoint and a tlog-proof under it."""
        proof = self.log.tlog_proof(index)
        return {"log_index": index, "checkpoint": self.log.signed_checkpoint, "proof": proof}

    async def handle_upload_clip(self, request: web.Request) -> web.Response:
        """POST /v1/requests/{id}/clips/{sha256}: receive one sealed clip from a hub."""
        sha256 = request.match_info["sha256"]
        if not SHA256_HEX.fullmatch(sha256):
            raise SchemaError(
                "a clip is named by the lower-case hex SHA-256 of its sealed bytes",
                reason="bad_sha256",
                field="sha256",
            )
        request_id = self._request_id(request)
        # The body streams to disk; the signature covers its Content-Digest, checked as it
        # arrives, so the body need not fit in memory.
        member = await self.gateway.authenticate(request, None)
        digests = parse_content_digest(request.headers.get("Content-Digest"))
        if digests["sha-256"] != bytes.fromhex(sha256):
            raise HopDigestError(
                "the signed Content-Digest is not the SHA-256 the clip is named by",
                reason="digest_mismatch",
            )
        length = request.content_length
        if length is None:
            raise LengthRequired("send the sealed clip with a Content-Length")
        if length > self.settings.max_clip_bytes:
            raise MalformedMessage(
                f"a sealed clip may be at most {self.settings.max_clip_bytes} bytes; this one "
                f"is {length}",
                reason="too_large",
            )

        def precheck(db: sqlite3.Connection) -> tuple[rs.ClipRow | None, int]:
            rs.check_recipient(db, request_id, member.kid)
            rs.check_not_answered(db, request_id, member.kid)
            return rs.clip_row(db, request_id, sha256), rs.clip_bytes_held(db)

        existing, held = await self._read(precheck)
        if existing is not None:
            if existing.hub == member.kid and existing.size == length:
                return web.json_response(
                    {"sha256": sha256, "size": length, "expires": existing.expires_at}
                )
            raise FederationError(
                "another hub already uploaded this clip for this request", reason="clip_exists"
            )
        if held + length > self.settings.max_clip_store_bytes:
            raise StoreFull(
                "the gateway holds as many sealed clips as it may; try again once agencies "
                "have picked some up"
            )
        stored = await self.clips.receive(
            request_id,
            sha256,
            request.content.iter_chunked(CHUNK),
            length=length,
            signed_digests=digests,
        )
        now = self.gateway.clock()
        expires = now + self.settings.clip_ttl_s

        def commit(db: sqlite3.Connection) -> rs.ClipRow | None:
            rs.check_not_answered(db, request_id, member.kid)
            if member.blocked:
                raise HubBlocked("this hub is blocked by the gateway's operator")
            # Two uploads of the same clip can race past the precheck: the first to commit
            # keeps it; the other must neither fail with a 5xx nor delete the stored file.
            raced = rs.clip_row(db, request_id, sha256)
            if raced is not None:
                return raced
            rs.add_clip(
                db,
                request_id=request_id,
                sha256=sha256,
                hub=member.kid,
                size=stored.size,
                expires_at=expires,
                now=now,
            )

        try:
            raced = await self._write(commit)
        except BaseException:
            await asyncio.shield(self.clips._call(self.clips.delete, request_id, sha256))
            raise
        if raced is not None:
            if raced.hub == member.kid and raced.size == stored.size:
                return web.json_response(
                    {"sha256": sha256, "size": stored.size, "expires": raced.expires_at})
            raise FederationError(
                "another hub already uploaded this clip for this request", reason="clip_exists"
            )
        # Not the member: the file's digest will be in its public answer.
        log.info("sealed file %s uploaded for %s", sha256[:12], request_id)
        return web.json_response(
            {"sha256": sha256, "size": stored.size, "expires": expires}, status=201
        )
