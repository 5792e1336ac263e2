"""The hub in its neighbourhood: joining a gateway, posting alerts, and the services of `run`
that keep the gateway stream and the outbox moving.

Posting only queues: the running hub delivers each queued alert to the gateway and to LAN
neighbours with retries, backoff and a circuit breaker per peer, so nothing is lost while a
peer is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

from federation.cells import cell_for
from federation.delivery import CircuitOpen, DeliveryFailed
from federation.errors import FederationError
from federation.jws import sign_message, split_compact, verify_message
from federation.keys import KeySet
from federation.member.client import (
    GatewayClient,
    Membership,
    alert_id,
    join_gateway,
    verify_relayed,
)
from federation.replay import SqliteReplayStore
from federation.schemas import TYP_ALERT
from hub.aio import cancel_and_wait
from hub.datadir import DataDir, write_private
from hub.errors import PorchlightError, UsageError
from hub.household import hub_key
from hub.neighbourhood.alerts import LAW_ENFORCEMENT, OWN, VERIFIED_MEMBER, alert_row, store_alert
from hub.neighbourhood.attachments import load_attachment
from hub.neighbourhood.gossip import (
    already_resumed,
    compare_with_peer,
    fetch_peer_checkpoint,
    fork_alarm,
    raise_fork_alarm,
)
from hub.neighbourhood.witness import trusted_witnesses
from hub.timeutil import iso, utcnow

log = logging.getLogger(__name__)
OUTBOX_POLL_S = 0.5
PHOTO_POLL_S = 2.0
ALERT_LIFETIME_S = 7 * 24 * 3600


def membership_path(data: DataDir) -> Path:
    """Return where the hub keeps its gateway membership (the pinned gateway key)."""
    return data.root / "federation" / "membership.json"


def load_membership(data: DataDir) -> Membership | None:
    """Return the hub's membership, or None if it has not joined a gateway."""
    path = membership_path(data)
    if not path.exists():
        return None
    return Membership.from_dict(json.loads(path.read_text(encoding="utf-8")))


def hub_cell(hub) -> str:
    """Return the hub's H3 resolution-7 cell: all that the neighbourhood learns of where it is."""
    location = hub.config.hub.location
    if location is None:
        raise UsageError("this hub has no location: add `location = { lat = .., lon = .. }` to "
                         "[hub] in config.toml (it stays on the hub; only a coarse cell is shared)")
    return cell_for(location.lat, location.lon)


def join(hub, url: str, code: str, pin: str | None = None,
         registry_key: str | None = None) -> Membership:
    """Join the gateway at url with an invite code, pin its key, and store the membership."""
    return asyncio.run(join_async(hub, url, code, pin=pin, registry_key=registry_key))


async def join_async(hub, url: str, code: str, pin: str | None = None,
                     registry_key: str | None = None) -> Membership:
    """Join as `join` does, from a running event loop (the web UI); nothing is stored on failure."""
    from federation.keys import parse_pin

    authority = parse_pin(registry_key) if registry_key else None
    if load_membership(hub.data) is not None:
        raise PorchlightError("this hub is already a member of a gateway "
                              f"({load_membership(hub.data).url}); leave it first")
    try:
        membership = await join_gateway(url, code, hub_key(hub.data), hub_cell(hub), pin=pin)
    except FederationError as err:
        raise PorchlightError(f"could not join {url}: {err.message}") from err
    write_private(membership_path(hub.data), json.dumps(membership.to_dict(), indent=2).encode())
    if authority:
        from hub.neighbourhood.requests import pin_authority

        pin_authority(hub.data, authority)
    return membership


async def with_gateway_client(hub, work):
    """Run `await work(client, gateway_kid)` with a client of the hub's gateway."""
    membership = load_membership(hub.data)
    if membership is None:
        raise UsageError("this hub is not a member of a gateway")
    async with GatewayClient.for_membership(membership, hub_key(hub.data)) as client:
        return await work(client, membership.gateway_kid)


def alert_channels(hub) -> list[tuple[str, str]]:
    """Return (channel, audience) for every way this hub reaches neighbours; raise if none.

    Also checks the hub's location, so that `alerts post` can refuse before it writes anything.
    """
    from hub.neighbourhood.lan import LAN_AUDIENCE

    hub_cell(hub)
    membership = load_membership(hub.data)
    channels: list[tuple[str, str]] = []
    if membership is not None:
        channels.append(("gateway", membership.gateway_kid))
    if hub.config.lan.enabled:
        channels.append(("lan", LAN_AUDIENCE))
    if not channels:
        raise UsageError("this hub has no neighbours yet: join a gateway with `porchlight join "
                         "URL CODE`, or enable [lan] in config.toml")
    return channels


def queue_alert(hub, category: str, text: str, attachments: list[dict] | None = None) -> dict:
    """Sign an alert for each channel this hub has (gateway, LAN), keep it, and queue delivery."""
    channels = alert_channels(hub)
    key = hub_key(hub.data)
    cell = hub_cell(hub)
    now = int(hub.clock().timestamp())
    signed = []
    for channel, audience in channels:
        claims = {"aud": audience, "category": category, "text": text, "cell": cell,
                  "attachments": attachments or [], "iat": now, "exp": now + ALERT_LIFETIME_S}
        token = sign_message(key, TYP_ALERT, claims, now=now)
        message = verify_message(token, typ=TYP_ALERT, trusted=KeySet([key.public_jwk]),
                                 audience=audience, now=now)
        signed.append((channel, token, message))
    expires = iso(datetime.fromtimestamp(now + ALERT_LIFETIME_S, UTC))
    # One transaction, in plain SQL (sqlite-utils commits after each insert): an alert is
    # queued on every channel or on none.
    with hub.db.write_lock, hub.db.conn:
        hub.db.execute("BEGIN IMMEDIATE")
        for channel, token, message in signed:
            _insert(hub.db, "alerts", alert_row(token, message, via=channel, verification=OWN))
            _insert(hub.db, "outbox", {"id": uuid.uuid4().hex, "channel": channel, "token": token,
                                       "created": iso(utcnow()), "attempts": 0, "last_error": "",
                                       "delivered": None, "delivered_to": "[]",
                                       "expires": expires})
    return {channel: alert_id(token) for channel, token, _ in signed}


def _insert(db, table: str, row: dict) -> None:
    columns = ", ".join(f'"{name}"' for name in row)
    marks = ", ".join("?" for _ in row)
    db.execute(f'insert into "{table}" ({columns}) values ({marks})', list(row.values()))


class NeighbourhoodService:
    """Consume the gateway's stream, serve the LAN, and deliver the outbox while the hub runs."""

    def __init__(self, hub) -> None:
        self.hub = hub
        self.membership = load_membership(hub.data)
        self.key = hub_key(hub.data)
        (hub.data.root / "federation").mkdir(exist_ok=True)
        self.replay = SqliteReplayStore(hub.data.root / "federation" / "replay.db")
        self.client: GatewayClient | None = None
        self.lan = None
        self.tasks: list[asyncio.Task] = []
        self.gateway_state = "not a member"

    async def __aenter__(self) -> NeighbourhoodService:
        if self.hub.config.lan.enabled:
            from hub.neighbourhood.lan import LanService

            host, _, port = self.hub.config.lan.listen.rpartition(":")
            self.lan = LanService(self.hub, self.key, host, int(port),
                                  list(self.hub.config.lan.interfaces), self.replay)
            self._open_witness()
            await self.lan.__aenter__()
        if self.membership is not None:
            self._start_gateway()
        self._start_delivery()
        return self

    def attach(self, membership: Membership) -> None:
        """Start consuming a gateway the hub has just joined (the web UI's join), no restart."""
        if self.client is not None:
            raise PorchlightError("this hub already follows a gateway")
        self.membership = membership
        self._start_gateway()
        self._start_delivery()

    def _start_gateway(self) -> None:
        self.client = GatewayClient.for_membership(self.membership, self.key)
        self.tasks.append(asyncio.create_task(self._consume(), name="gateway-stream"))
        self.tasks.append(asyncio.create_task(self._fetch_photos(), name="gateway-photos"))
        if self.lan is not None:
            self.lan.checkpoint = lambda: self._state("last_checkpoint")
            self.tasks.append(asyncio.create_task(self._gossip(), name="lan-gossip"))

    def _start_delivery(self) -> None:
        running = any(t.get_name() == "outbox" and not t.done() for t in self.tasks)
        if not running and (self.client is not None or self.lan is not None):
            self.tasks.append(asyncio.create_task(self._deliver(), name="outbox"))

    def _open_witness(self) -> None:
        """Witness the gateway's log on the LAN server when the owner turned it on."""
        if not self.hub.config.lan.witness:
            return
        if self.membership is None:
            log.warning("[lan] witness = true, but this hub has joined no gateway: no log to "
                        "witness yet")
            return
        from hub.neighbourhood.witness import open_witness

        self.lan.witness = open_witness(self.hub, self.membership.gateway_jwk)
        log.info("witnessing the log of gateway %s as %s (witness key %s)",
                 self.membership.gateway_kid[:12], self.lan.witness.signer.name,
                 self.lan.witness.vkey)

    def start_witness(self) -> bool:
        """Serve the witness the owner just turned on (the web UI); return whether it serves."""
        if self.lan is None or self.membership is None:
            return False  # the LAN server is not running: a restart starts it
        if self.lan.witness is None:
            from hub.neighbourhood.witness import open_witness

            self.lan.witness = open_witness(self.hub, self.membership.gateway_jwk)
            log.info("witnessing the log of gateway %s as %s (witness key %s)",
                     self.membership.gateway_kid[:12], self.lan.witness.signer.name,
                     self.lan.witness.vkey)
        return True

    async def __aexit__(self, *exc) -> None:
        await cancel_and_wait(*self.tasks)
        if self.lan is not None:
            await self.lan.__aexit__(*exc)
        if self.client is not None:
            await self.client.close()

    def _last_seq(self) -> int:
        value = self._state("gateway_seq")
        return int(value) if value else self.membership.since

    def _store_seq(self, seq: int) -> None:
        self._set_state("gateway_seq", str(seq))

    def _on_state(self, state: str) -> None:
        if state != self.gateway_state:
            log.info("gateway %s: %s", self.membership.url, state)
            self.gateway_state = state

    async def _consume(self) -> None:
        await self._refresh_registry()
        try:
            async for message in self.client.stream(self._last_seq(), self._store_seq,
                                                    on_state=self._on_state):
                if message.kind == "request":
                    await self._accept_request(message)
                elif message.kind == "announcement":
                    await self._accept_announcement(message)
                else:
                    await asyncio.to_thread(self._accept, message)
        except FederationError as err:
            log.error("gateway stream stopped: %s", err)
            self._on_state(f"refused: {err}")

    async def _refresh_registry(self) -> None:
        """Fetch a newer registry from the gateway; keep the pinned one on any failure."""
        from hub.neighbourhood.requests import load_registry, pinned_authority, store_registry

        authority = pinned_authority(self.hub.data)
        if authority is None:
            return
        now = self.hub.clock().timestamp()
        try:
            current = await asyncio.to_thread(load_registry, self.hub.data,
                                              self.membership.gateway_kid, now)
        except FederationError as err:
            log.warning("the stored registry no longer verifies: %s", err)
            current = None
        try:
            fresh = await self.client.fetch_registry(authority, current=current, now=now)
        except FederationError as err:
            log.warning("registry not refreshed: %s", err)
            return
        if fresh is not current:
            await asyncio.to_thread(store_registry, self.hub.data, fresh)
            log.info("registry version %s from authority %s", fresh.version, authority[:12])

    async def _accept_request(self, message) -> None:
        """Verify a routed agency request; keep it for the owner, or record why it was dropped."""
        from federation.member.requests import checkpoint_verifier, verify_routed_request
        from hub.neighbourhood.requests import (
            DROPPED,
            PENDING,
            load_registry,
            own_checks,
            record_request,
        )

        known = self.hub.db.execute("select status from requests where id = ?",
                                    [message.id]).fetchone()
        if known is not None and known[0] != DROPPED:
            # A redelivery after a crash, or a gateway replaying: the owner saw it once already.
            log.warning("agency request %s delivered again; ignored (replayed)", message.id)
            return
        alarm = fork_alarm(self.hub.db)
        if alarm is not None and alarm["gateway"] == self.membership.gateway_kid:
            why = ("withheld: this gateway showed this hub and a LAN neighbour different logs "
                   f"({alarm['why']}); see `porchlight requests list`, then "
                   "`porchlight requests resume`")
            log.warning("dropped agency request %s: %s", message.id, why)
            await asyncio.to_thread(record_request, self.hub, None, status=DROPPED, detail=why,
                                    request_id=message.id, token=message.jws)
            return
        await self._refresh_registry()
        now = self.hub.clock().timestamp()
        last = self._state("last_checkpoint")
        try:
            registry = await asyncio.to_thread(load_registry, self.hub.data,
                                               self.membership.gateway_kid, now)
            if registry is None:
                raise PorchlightError("no registry is pinned (join with --registry-key)")
            consistency = await self.client.consistency_for(message, last)
            # The owner's witnesses and the LAN neighbours' pinned ones (witness.py).
            trusted = await asyncio.to_thread(trusted_witnesses, self.hub.config, self.hub.db)
            verified = await asyncio.to_thread(
                verify_routed_request, message, registry=registry,
                witnesses=trusted, min_witnesses=self.hub.config.witnesses.min,
                gateway_kid=self.membership.gateway_kid, last_checkpoint=last,
                verifier_key=checkpoint_verifier(self.membership.gateway_jwk), now=now,
                # Replays are caught by request id above, so that a redelivery after a crash
                # between verifying and storing is not lost as a "replay".
                replay_store=None, consistency_proof=consistency)
        except (FederationError, PorchlightError) as err:
            why = err.message if isinstance(err, FederationError) else str(err)
            log.warning("dropped agency request %s: %s", message.id, why)
            await asyncio.to_thread(record_request, self.hub, None, status=DROPPED, detail=why,
                                    request_id=message.id, token=message.jws)
            return
        self._set_state("last_checkpoint", verified.store_checkpoint)
        why = await asyncio.to_thread(own_checks, self.hub, verified)
        if why is not None:
            log.info("dropped agency request %s: %s", verified.id, why)
            await asyncio.to_thread(record_request, self.hub, verified, status=DROPPED, detail=why)
            return
        await asyncio.to_thread(record_request, self.hub, verified, status=PENDING)
        self.hub.emit({"kind": "request", "id": verified.id, "agency": verified.agency.name,
                       "summary": f"{verified.agency.name} asks for footage "
                                  f"(case {verified.claims.case}); approve or deny it"})

    async def _accept_announcement(self, message) -> None:
        """Show an announcement as law enforcement only if an agency of the pinned registry signed it."""
        from federation.announcements import verify_announcement
        from hub.neighbourhood.requests import load_registry

        now = self.hub.clock().timestamp()
        try:
            registry = await asyncio.to_thread(load_registry, self.hub.data,
                                               self.membership.gateway_kid, now)
            if registry is None:
                raise PorchlightError("no registry is pinned (join with --registry-key)")
            verified = verify_announcement(message, registry=registry,
                                           gateway_kid=self.membership.gateway_kid, now=now,
                                           replay_store=self.replay)
        except (FederationError, PorchlightError) as err:
            log.warning("dropped an announcement: %s", err)
            return
        agency = registry.agency(verified.kid).name
        if await asyncio.to_thread(store_alert, self.hub.db, message.jws, verified,
                                   via="gateway", verification=f"{LAW_ENFORCEMENT}: {agency}"):
            self.hub.emit({"kind": "announcement", "agency": agency,
                           "summary": f"announcement from {agency}"})

    async def _fetch_photos(self) -> None:
        """Fetch the photos of alerts relayed by the gateway, as they become available."""
        from federation.http import GatewayRejected
        from federation.member.client import AttachmentCorrupt
        from hub.neighbourhood.attachments import attachments_dir, store_attachment

        given_up: set[str] = set()
        while True:
            rows = await asyncio.to_thread(lambda: list(self.hub.db.execute(
                "select id, attachments from alerts where via = 'gateway' and attachments != '[]'"
                " and verification = ? and expires > ?",
                [VERIFIED_MEMBER, iso(self.hub.clock())])))
            for alert, text in rows:
                for photo in json.loads(text):
                    digest = photo["sha256"]
                    if not photo["type"].startswith("image/"):
                        continue
                    if digest in given_up or (attachments_dir(self.hub.data) / digest).exists():
                        continue
                    try:
                        data = await self.client.fetch_attachment(alert, digest, photo["size"])
                    except GatewayRejected as err:
                        if err.reason != "not_uploaded":  # not for us, or gone: stop asking
                            given_up.add(digest)
                        continue
                    except AttachmentCorrupt as err:
                        log.warning("the gateway served a corrupt photo: %s", err)
                        continue
                    except FederationError:
                        continue
                    await asyncio.to_thread(store_attachment, self.hub.data, data, photo["type"])
            await asyncio.sleep(PHOTO_POLL_S)

    async def _gossip(self) -> None:
        """Compare the gateway checkpoint this hub saw with each LAN neighbour's, now and then."""
        interval = self.hub.config.lan.gossip_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self._gossip_once()
            except Exception:
                # A bug here must not stop the hub; the next round tries again.
                log.exception("LAN gossip round failed")

    async def _gossip_once(self) -> None:
        # LAN neighbours that witness count toward k once their witness key is pinned.
        await self.lan.learn_witnesses()
        ours = self._state("last_checkpoint")
        if ours is None or fork_alarm(self.hub.db) is not None:
            return
        for peer in list(self.lan.directory.peers.values()):
            if peer.role != "hub":
                continue
            theirs = await fetch_peer_checkpoint(self.lan.session, peer.origin)
            if theirs is None or theirs == ours:
                continue
            split = await compare_with_peer(self.client, self.membership.gateway_jwk, ours,
                                            theirs)
            if split is not None and not already_resumed(self.hub.db, split):
                await asyncio.to_thread(raise_fork_alarm, self.hub,
                                        self.membership.gateway_kid, split, peer.kid)
                return

    def _state(self, key: str) -> str | None:
        row = self.hub.db.execute("select value from federation_state where key = ?",
                                  [key]).fetchone()
        return row[0] if row else None

    def _set_state(self, key: str, value: str) -> None:
        with self.hub.db.write_lock:
            self.hub.db["federation_state"].upsert({"key": key, "value": value}, pk="key")

    def _accept(self, message) -> None:
        try:
            verified = verify_relayed(message, gateway_kid=self.membership.gateway_kid,
                                      now=self.hub.clock().timestamp(), replay_store=self.replay)
        except FederationError as err:
            log.warning("dropped a relayed %s: %s", message.kind, err)
            return
        if store_alert(self.hub.db, message.jws, verified, via="gateway",
                       verification=VERIFIED_MEMBER):
            claims = verified.claims
            self.hub.emit({"kind": "alert", "via": "gateway", "id": message.id,
                           "category": claims["category"],
                           "summary": f"neighbourhood alert ({claims['category']})"})

    async def _deliver(self) -> None:
        while True:
            rows = list(self.hub.db["outbox"].rows_where("delivered is null", order_by="created"))
            for row in rows:
                await self._send(row)
            await asyncio.sleep(OUTBOX_POLL_S)

    async def _send(self, row: dict) -> None:
        if row["expires"] and row["expires"] <= iso(self.hub.clock()):
            self._update(row, error="expired before every peer had it", done=True)
            return
        try:
            if row["channel"] == "gateway" and self.client is not None:
                alert = await self.client.post_alert(row["token"])
                # The gateway takes photos only of an alert it holds: upload them after it.
                for photo in _claims(row["token"]).get("attachments", []):
                    if not photo["type"].startswith("image/"):
                        continue  # the gateway stores no video: clips go to LAN neighbours only
                    data = load_attachment(self.hub.data, photo["sha256"])
                    if data is not None:
                        await self.client.upload_attachment(alert, photo["sha256"], data)
                self._update(row, error="", done=True)
            elif row["channel"] == "lan" and self.lan is not None:
                # LAN neighbours come and go: deliver to each one seen until the alert expires.
                done = set(json.loads(row["delivered_to"] or "[]"))
                outcome = await self.lan.broadcast(row["token"], skip=done)
                if outcome:
                    done |= {kid for kid, result in outcome.items() if result == "delivered"}
                    errors = {k: v for k, v in outcome.items() if v != "delivered"}
                    self._update(row, error=json.dumps(errors) if errors else "",
                                 delivered_to=sorted(done))
        except (CircuitOpen, DeliveryFailed) as err:
            self._update(row, error=str(err))
        except FederationError as err:
            # Refused for good (schema, expired): retrying cannot help; keep why.
            self._update(row, error=str(err), done=True)

    def _update(self, row: dict, *, error: str, done: bool = False,
                delivered_to: list[str] | None = None) -> None:
        changes = {"attempts": row["attempts"] + 1, "last_error": error}
        if delivered_to is not None:
            changes["delivered_to"] = json.dumps(delivered_to)
        if done:
            changes["delivered"] = iso(utcnow())
        with self.hub.db.write_lock:
            self.hub.db["outbox"].update(row["id"], changes)


def _claims(token: str) -> dict:
    """Read the claims of a JWS this hub signed itself (already verified when it was queued)."""
    return json.loads(split_compact(token).payload)
