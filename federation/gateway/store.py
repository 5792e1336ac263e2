"""The gateway's state in one SQLite file: members, invites, alerts, per-hub queues, limits.

Nothing here verifies a signature; callers hand in messages that already verified. Each
method is one transaction, so a rejected or half-done request changes nothing. The file is
shared with the operator's commands (invite, block) while the gateway runs, hence WAL mode
and a busy timeout. Only signed JWS text of at most 64 KiB is ever stored here: no video, no
hub's exact location. (Alert photos live as files beside it until their alert expires:
federation/gateway/photo_relay.py.)
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from federation.errors import ReplayDetected
from federation.gateway.errors import (
    AlreadyMember,
    HubBlocked,
    InviteInvalid,
    NotMember,
    RateLimited,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
# How long a replay entry outlives its message's exp (the JWS clock leeway).
REPLAY_LEEWAY_S = 60

_SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE invites ("
    " id TEXT PRIMARY KEY, secret_sha256 BLOB NOT NULL, created_at REAL NOT NULL,"
    " expires_at REAL NOT NULL, used_at REAL, used_by TEXT)",
    "CREATE TABLE members ("
    " kid TEXT PRIMARY KEY, jwk TEXT NOT NULL, hop_kid TEXT NOT NULL UNIQUE,"
    " hop_jwk TEXT NOT NULL, cell TEXT NOT NULL, joined_at REAL NOT NULL,"
    " registered_at REAL NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0,"
    " acked_seq INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX members_cell ON members (cell)",
    "CREATE TABLE blocked (kid TEXT PRIMARY KEY, blocked_at REAL NOT NULL, note TEXT NOT NULL)",
    "CREATE TABLE alerts ("
    " id TEXT PRIMARY KEY, author TEXT NOT NULL, jti TEXT NOT NULL, cell TEXT NOT NULL,"
    " category TEXT NOT NULL, token TEXT NOT NULL, received_at REAL NOT NULL,"
    " expires_at REAL NOT NULL)",
    "CREATE INDEX alerts_expires ON alerts (expires_at)",
    "CREATE INDEX alerts_author ON alerts (author)",
    "CREATE TABLE deliveries ("
    " hub TEXT NOT NULL, seq INTEGER NOT NULL,"
    " alert_id TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,"
    " PRIMARY KEY (hub, seq)) WITHOUT ROWID",
    "CREATE INDEX deliveries_alert ON deliveries (alert_id)",
    "CREATE TABLE replay ("
    " iss TEXT NOT NULL, jti TEXT NOT NULL, keep_until REAL NOT NULL,"
    " PRIMARY KEY (iss, jti)) WITHOUT ROWID",
    "CREATE INDEX replay_keep_until ON replay (keep_until)",
    "CREATE TABLE rate ("
    " kid TEXT NOT NULL, bucket TEXT NOT NULL, window_start REAL NOT NULL,"
    " count INTEGER NOT NULL, PRIMARY KEY (kid, bucket)) WITHOUT ROWID",
]

# Version 2: agency requests (federation/gateway/request_store.py reads and writes these).
# The transparency log is the record; these tables index it, and log_entries says how far.
_SCHEMA_V2 = [
    "CREATE TABLE log_entries ("
    " log_index INTEGER PRIMARY KEY, kind TEXT NOT NULL, signer TEXT NOT NULL,"
    " jwk TEXT NOT NULL, request_id TEXT, decision TEXT)",
    "CREATE INDEX log_entries_request ON log_entries (request_id)",
    "CREATE TABLE registry_versions ("
    " version INTEGER PRIMARY KEY, log_index INTEGER NOT NULL UNIQUE, token TEXT NOT NULL,"
    " authority_jwk TEXT NOT NULL, exp INTEGER NOT NULL, agencies TEXT NOT NULL)",
    "CREATE TABLE requests ("
    " id TEXT PRIMARY KEY, agency TEXT NOT NULL, token TEXT NOT NULL,"
    " log_index INTEGER NOT NULL UNIQUE, exp INTEGER NOT NULL, received_at REAL NOT NULL)",
    "CREATE INDEX requests_agency ON requests (agency)",
    "CREATE TABLE request_recipients ("
    " request_id TEXT NOT NULL REFERENCES requests (id), hub TEXT NOT NULL,"
    " seq INTEGER NOT NULL, PRIMARY KEY (request_id, hub)) WITHOUT ROWID",
    "CREATE UNIQUE INDEX request_recipients_hub_seq ON request_recipients (hub, seq)",
    "CREATE TABLE answers ("
    " request_id TEXT NOT NULL REFERENCES requests (id), hub TEXT NOT NULL,"
    " decision TEXT NOT NULL, token TEXT NOT NULL, hub_jwk TEXT NOT NULL,"
    " log_index INTEGER NOT NULL UNIQUE, received_at REAL NOT NULL,"
    " PRIMARY KEY (request_id, hub)) WITHOUT ROWID",
    "CREATE TABLE clips ("
    " request_id TEXT NOT NULL REFERENCES requests (id), sha256 TEXT NOT NULL,"
    " hub TEXT NOT NULL, size INTEGER NOT NULL, uploaded_at REAL NOT NULL,"
    " expires_at REAL NOT NULL, listed INTEGER NOT NULL DEFAULT 0, fetched_at REAL,"
    " PRIMARY KEY (request_id, sha256)) WITHOUT ROWID",
    "CREATE INDEX clips_expires ON clips (expires_at)",
]

# Version 3: agency announcements (federation/gateway/announcements.py) and alert photos
# (federation/gateway/attachments.py). alert_recipients is filled only for alerts that list a
# photo: it says who may fetch it after the queue entries are acknowledged and gone.
_SCHEMA_V3 = [
    "CREATE TABLE announcements ("
    " id TEXT PRIMARY KEY, agency TEXT NOT NULL, jti TEXT NOT NULL, category TEXT NOT NULL,"
    " token TEXT NOT NULL, received_at REAL NOT NULL, expires_at REAL NOT NULL)",
    "CREATE INDEX announcements_expires ON announcements (expires_at)",
    "CREATE INDEX announcements_agency ON announcements (agency)",
    "CREATE TABLE announcement_deliveries ("
    " hub TEXT NOT NULL, seq INTEGER NOT NULL,"
    " announcement_id TEXT NOT NULL REFERENCES announcements (id) ON DELETE CASCADE,"
    " PRIMARY KEY (hub, seq)) WITHOUT ROWID",
    "CREATE INDEX announcement_deliveries_id ON announcement_deliveries (announcement_id)",
    "CREATE TABLE announcement_tallies (agency TEXT PRIMARY KEY, count INTEGER NOT NULL)",
    "CREATE TABLE alert_recipients ("
    " alert_id TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE, hub TEXT NOT NULL,"
    " PRIMARY KEY (alert_id, hub)) WITHOUT ROWID",
    "CREATE TABLE alert_attachments ("
    " alert_id TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE, sha256 TEXT NOT NULL,"
    " size INTEGER NOT NULL, type TEXT NOT NULL, uploaded_at REAL NOT NULL,"
    " PRIMARY KEY (alert_id, sha256)) WITHOUT ROWID",
]


@dataclass(frozen=True)
class Member:
    """A hub in the neighbourhood as the gateway knows it: keys and coarse cell only."""

    kid: str
    jwk: dict[str, str]
    hop_kid: str
    hop_jwk: dict[str, str]
    cell: str
    joined_at: float
    registered_at: float
    last_seq: int
    acked_seq: int
    blocked: bool


@contextlib.contextmanager
def _locked(lock: threading.RLock, db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    with lock:
        yield db


@dataclass(frozen=True)
class Delivery:
    """One queued message for one hub: an alert, or an agency request (with its log index)."""

    seq: int
    alert_id: str
    token: str
    author_jwk: str
    kind: str = "alert"
    log_index: int = -1


@dataclass(frozen=True)
class Replay:
    """A message id to remember so the same message is never accepted twice."""

    iss: str
    jti: str
    exp: float


def hash_secret(secret: str) -> bytes:
    """Return the stored form of an invite secret."""
    # Invite secrets are random and long, so a plain SHA-256 suffices (no password hashing).
    return hashlib.sha256(secret.encode("ascii")).digest()


class GatewayStore:
    """The gateway's SQLite database; safe to share between threads and processes."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        path = os.fspath(path)
        if not create and not os.path.exists(path):
            raise FileNotFoundError(path)
        self.path = path
        self._lock = threading.RLock()
        # Autocommit mode; every write below runs in an explicit BEGIN IMMEDIATE transaction.
        self._db = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; a power cut may lose the last commits
        # (alerts can be re-posted, and their jti stays unique), never corrupts the file.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        with self._tx() as db:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            upgrades = {
                0: _SCHEMA + _SCHEMA_V2 + _SCHEMA_V3,
                1: _SCHEMA_V2 + _SCHEMA_V3,
                2: _SCHEMA_V3,
            }
            if version in upgrades:
                for statement in upgrades[version]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has gateway schema {version}; this Porchlight knows "
                    f"{SCHEMA_VERSION}. Upgrade Porchlight."
                )

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """Return a write transaction (BEGIN IMMEDIATE) on the shared connection."""
        return self._tx()

    def read(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """Return the connection for reads, holding the store's lock."""
        return _locked(self._lock, self._db)

    def remember_in(self, db: sqlite3.Connection, replay: Replay, now: float) -> None:
        """Inside a transaction: remember a message id, or raise ReplayDetected."""
        self._remember(db, replay, now)

    def hit_in(
        self,
        db: sqlite3.Connection,
        kid: str,
        bucket: str,
        *,
        limit: int,
        window_s: float,
        now: float,
    ) -> None:
        """Inside a transaction: count one use of a bucket, or raise RateLimited."""
        self._hit(db, kid, bucket, limit=limit, window_s=window_s, now=now)

    # -- meta -------------------------------------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        """Store one named value."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def get_meta(self, key: str) -> str | None:
        """Return one named value, or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    # -- invites ----------------------------------------------------------------------------

    def add_invite(self, invite_id: str, secret: str, *, now: float, ttl_s: float) -> None:
        """Store a new invite (its secret only hashed)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO invites (id, secret_sha256, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (invite_id, hash_secret(secret), now, now + ttl_s),
            )

    def invite_exists(self, invite_id: str) -> bool:
        """Tell whether an invite id is taken (used or not)."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM invites WHERE id = ?", (invite_id,)).fetchone()
        return row is not None

    def _check_invite(
        self, db: sqlite3.Connection, invite_id: str, secret: str, now: float
    ) -> None:
        row = db.execute(
            "SELECT secret_sha256, expires_at, used_at FROM invites WHERE id = ?", (invite_id,)
        ).fetchone()
        # Compare the hash even for an unknown id, so timing tells nothing about which ids exist.
        stored = row[0] if row is not None else b"\0" * 32
        matches = hmac.compare_digest(stored, hash_secret(secret))
        if row is None or not matches or row[2] is not None or row[1] < now:
            raise InviteInvalid(
                "invite code is unknown, already used or expired; ask the gateway's operator "
                "for a new one",
            )

    def check_invite(self, invite_id: str, secret: str, *, now: float) -> None:
        """Raise InviteInvalid unless the invite is unused, unexpired and the secret matches."""
        with self._lock:
            self._check_invite(self._db, invite_id, secret, now)

    # -- members ----------------------------------------------------------------------------

    def _member(self, where: str, value: str) -> Member | None:
        with self._lock:
            row = self._db.execute(
                "SELECT m.kid, m.jwk, m.hop_kid, m.hop_jwk, m.cell, m.joined_at,"
                " m.registered_at, m.last_seq, m.acked_seq, b.kid IS NOT NULL"
                f" FROM members m LEFT JOIN blocked b ON b.kid = m.kid WHERE m.{where} = ?",
                (value,),
            ).fetchone()
        if row is None:
            return None
        return Member(
            kid=row[0],
            jwk=json.loads(row[1]),
            hop_kid=row[2],
            hop_jwk=json.loads(row[3]),
            cell=row[4],
            joined_at=row[5],
            registered_at=row[6],
            last_seq=row[7],
            acked_seq=row[8],
            blocked=bool(row[9]),
        )

    def member(self, kid: str) -> Member | None:
        """Return the member with this hub kid, or None."""
        return self._member("kid", kid)

    def member_by_hop_kid(self, hop_kid: str) -> Member | None:
        """Return the member whose hop key has this kid, or None."""
        return self._member("hop_kid", hop_kid)

    def members(self) -> list[Member]:
        """Return every member, blocked ones included."""
        with self._lock:
            kids = [row[0] for row in self._db.execute("SELECT kid FROM members ORDER BY kid")]
        return [m for m in (self.member(kid) for kid in kids) if m is not None]

    def _remember(self, db: sqlite3.Connection, replay: Replay, now: float) -> None:
        cursor = db.execute(
            "INSERT INTO replay (iss, jti, keep_until) VALUES (?, ?, ?)"
            " ON CONFLICT (iss, jti) DO UPDATE SET keep_until = excluded.keep_until"
            " WHERE replay.keep_until < ?",
            (replay.iss, replay.jti, float(replay.exp) + REPLAY_LEEWAY_S, float(now)),
        )
        if cursor.rowcount == 0:
            raise ReplayDetected(
                f"message {replay.jti!r} from {replay.iss} was already received; "
                "a replayed message is ignored",
            )

    def add_member(
        self,
        *,
        kid: str,
        jwk: dict[str, str],
        hop_kid: str,
        hop_jwk: dict[str, str],
        cell: str,
        invite_id: str,
        invite_secret: str,
        replay: Replay,
        now: float,
    ) -> Member:
        """Consume the invite and add the member, all or nothing."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM blocked WHERE kid = ?", (kid,)).fetchone():
                raise HubBlocked(f"hub {kid} is blocked by this gateway's operator")
            if db.execute("SELECT 1 FROM members WHERE kid = ?", (kid,)).fetchone():
                raise AlreadyMember(
                    f"hub {kid} is already a member; it needs no new invite",
                )
            if db.execute("SELECT 1 FROM members WHERE hop_kid = ?", (hop_kid,)).fetchone():
                raise AlreadyMember(
                    "this hop key is already registered by another member; use a key of its own",
                    reason="hop_key_taken",
                )
            self._check_invite(db, invite_id, invite_secret, now)
            self._remember(db, replay, now)
            db.execute(
                "UPDATE invites SET used_at = ?, used_by = ? WHERE id = ?", (now, kid, invite_id)
            )
            db.execute(
                "INSERT INTO members (kid, jwk, hop_kid, hop_jwk, cell, joined_at, registered_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (kid, json.dumps(jwk), hop_kid, json.dumps(hop_jwk), cell, now, now),
            )
        member = self.member(kid)
        assert member is not None
        return member

    def update_registration(
        self,
        kid: str,
        *,
        cell: str,
        hop_kid: str,
        hop_jwk: dict[str, str],
        replay: Replay,
        now: float,
    ) -> Member:
        """Record a member's new cell and hop key, all or nothing."""
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM members WHERE kid = ?", (kid,)).fetchone():
                raise NotMember(f"hub {kid} is not a member of this neighbourhood")
            other = db.execute(
                "SELECT kid FROM members WHERE hop_kid = ? AND kid != ?", (hop_kid, kid)
            ).fetchone()
            if other:
                raise AlreadyMember(
                    "this hop key is already registered by another member; use a key of its own",
                    reason="hop_key_taken",
                )
            self._remember(db, replay, now)
            db.execute(
                "UPDATE members SET cell = ?, hop_kid = ?, hop_jwk = ?, registered_at = ?"
                " WHERE kid = ?",
                (cell, hop_kid, json.dumps(hop_jwk), now, kid),
            )
        member = self.member(kid)
        assert member is not None
        return member

    # -- blocking ---------------------------------------------------------------------------

    def block(self, kid: str, *, note: str, now: float) -> int:
        """Block a hub and withdraw its stored alerts; return how many alerts were withdrawn."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO blocked (kid, blocked_at, note) VALUES (?, ?, ?)"
                " ON CONFLICT (kid) DO NOTHING",
                (kid, now, note),
            )
            cursor = db.execute("DELETE FROM alerts WHERE author = ?", (kid,))
        return cursor.rowcount

    def unblock(self, kid: str) -> bool:
        """Lift a block; return whether the hub was blocked."""
        with self._tx() as db:
            cursor = db.execute("DELETE FROM blocked WHERE kid = ?", (kid,))
        return cursor.rowcount > 0

    def blocked(self) -> set[str]:
        """Return the kids of every blocked hub."""
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT kid FROM blocked")}

    # -- rate limits ------------------------------------------------------------------------

    def _hit(
        self,
        db: sqlite3.Connection,
        kid: str,
        bucket: str,
        *,
        limit: int,
        window_s: float,
        now: float,
    ) -> None:
        row = db.execute(
            "SELECT window_start, count FROM rate WHERE kid = ? AND bucket = ?", (kid, bucket)
        ).fetchone()
        if row is None or row[0] + window_s <= now:
            start, count = now, 0
        else:
            start, count = row
        if count >= limit:
            retry_after = max(0.0, start + window_s - now)
            raise RateLimited(
                f"more than {limit} {bucket} in {window_s:g} s from this hub; retry in "
                f"{retry_after:.0f} s",
                retry_after=retry_after,
            )
        db.execute(
            "INSERT INTO rate (kid, bucket, window_start, count) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kid, bucket) DO UPDATE SET window_start = excluded.window_start,"
            " count = excluded.count",
            (kid, bucket, start, count + 1),
        )

    def hit(self, kid: str, bucket: str, *, limit: int, window_s: float, now: float) -> None:
        """Count one use of a bucket by a hub, or raise RateLimited when it is full."""
        with self._tx() as db:
            self._hit(db, kid, bucket, limit=limit, window_s=window_s, now=now)

    def admit(
        self,
        *,
        nonce: Replay,
        kid: str | None,
        limit: int,
        window_s: float,
        now: float,
    ) -> None:
        """Remember a hop signature's nonce and count the request against the hub's quota."""
        # ReplayDetected for a nonce already used while its signature is fresh, RateLimited
        # when the hub's requests bucket is full; either way nothing is recorded. Nonces live
        # in the replay table under "hop:" + keyid, beside JWS ids, so a gateway restart does
        # not reopen the freshness window for a captured request.
        with self._tx() as db:
            self._remember(db, Replay("hop:" + nonce.iss, nonce.jti, nonce.exp), now)
            if kid is not None:
                self._hit(db, kid, "requests", limit=limit, window_s=window_s, now=now)

    # -- alerts and per-hub queues ----------------------------------------------------------

    def add_alert(
        self,
        *,
        alert_id: str,
        author: str,
        token: str,
        cell: str,
        category: str,
        replay: Replay,
        expires_at: float,
        recipient_cells: Iterable[str],
        limit: int,
        window_s: float,
        now: float,
        record_recipients: bool = False,
    ) -> list[tuple[str, int]]:
        """Store an alert and queue it for the members in the cells; return (kid, seq) pairs."""
        # The author's quota, the replay check, the alert and its queue entries commit
        # together or not at all. record_recipients keeps who got it beyond the acks, for an
        # alert whose photos they may fetch.
        cells = sorted(set(recipient_cells))
        with self._tx() as db:
            if db.execute("SELECT 1 FROM blocked WHERE kid = ?", (author,)).fetchone():
                raise HubBlocked(f"hub {author} is blocked by this gateway's operator")
            self._hit(db, author, "alerts", limit=limit, window_s=window_s, now=now)
            self._remember(db, replay, now)
            db.execute(
                "INSERT INTO alerts (id, author, jti, cell, category, token, received_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (alert_id, author, replay.jti, cell, category, token, now, expires_at),
            )
            marks = ",".join("?" * len(cells))
            recipients = db.execute(
                f"UPDATE members SET last_seq = last_seq + 1 WHERE cell IN ({marks})"
                " AND kid != ? AND kid NOT IN (SELECT kid FROM blocked)"
                " RETURNING kid, last_seq",
                (*cells, author),
            ).fetchall()
            db.executemany(
                "INSERT INTO deliveries (hub, seq, alert_id) VALUES (?, ?, ?)",
                [(kid, seq, alert_id) for kid, seq in recipients],
            )
            if record_recipients:
                db.executemany(
                    "INSERT INTO alert_recipients (alert_id, hub) VALUES (?, ?)",
                    [(alert_id, kid) for kid, _ in recipients],
                )
        return [(kid, seq) for kid, seq in recipients]

    def deliveries_after(self, hub: str, seq: int, *, limit: int, now: float) -> list[Delivery]:
        """Return a hub's queued messages after seq, in order, skipping expired ones."""
        # Alerts, agency requests and announcements share the hub's sequence numbers.
        with self._lock:
            rows = self._db.execute(
                "SELECT d.seq, a.id, a.token, m.jwk, 'alert', -1 FROM deliveries d"
                " JOIN alerts a ON a.id = d.alert_id"
                " JOIN members m ON m.kid = a.author"
                " WHERE d.hub = ? AND d.seq > ? AND a.expires_at >= ?"
                " UNION ALL"
                " SELECT rr.seq, r.id, r.token, '', 'request', r.log_index"
                " FROM request_recipients rr JOIN requests r ON r.id = rr.request_id"
                " WHERE rr.hub = ? AND rr.seq > ? AND r.exp + ? >= ?"
                " UNION ALL"
                " SELECT ad.seq, n.id, n.token, '', 'announcement', -1"
                " FROM announcement_deliveries ad JOIN announcements n"
                " ON n.id = ad.announcement_id"
                " WHERE ad.hub = ? AND ad.seq > ? AND n.expires_at >= ?"
                " ORDER BY 1 LIMIT ?",
                (hub, seq, now, hub, seq, REPLAY_LEEWAY_S, now, hub, seq, now, limit),
            ).fetchall()
        return [
            Delivery(
                seq=r[0], alert_id=r[1], token=r[2], author_jwk=r[3], kind=r[4], log_index=r[5]
            )
            for r in rows
        ]

    def record_acks(self, acks: dict[str, int]) -> None:
        """Remember the highest sequence each hub has acknowledged."""
        if not acks:
            return
        with self._tx() as db:
            db.executemany(
                "UPDATE members SET acked_seq = max(acked_seq, ?) WHERE kid = ?",
                [(seq, kid) for kid, seq in acks.items()],
            )

    def purge(self, *, now: float) -> dict[str, int]:
        """Delete expired alerts, announcements and invites, acknowledged deliveries, counters."""
        # An alert's photo rows go with it (ON DELETE CASCADE); their files are swept by the
        # gateway right after (federation/gateway/photo_relay.py).
        with self._tx() as db:
            counts = {
                "alerts": db.execute("DELETE FROM alerts WHERE expires_at < ?", (now,)).rowcount,
                "deliveries": db.execute(
                    "DELETE FROM deliveries WHERE seq <= (SELECT acked_seq FROM members m"
                    " WHERE m.kid = deliveries.hub)"
                ).rowcount,
                "announcements": db.execute(
                    "DELETE FROM announcements WHERE expires_at < ?", (now,)
                ).rowcount,
                "announcement_deliveries": db.execute(
                    "DELETE FROM announcement_deliveries WHERE seq <= (SELECT acked_seq"
                    " FROM members m WHERE m.kid = announcement_deliveries.hub)"
                ).rowcount,
                "replay": db.execute("DELETE FROM replay WHERE keep_until < ?", (now,)).rowcount,
                "invites": db.execute(
                    "DELETE FROM invites WHERE expires_at < ? AND used_at IS NULL", (now,)
                ).rowcount,
                # One hour outlives every rate window the gateway uses.
                "rate": db.execute(
                    "DELETE FROM rate WHERE window_start < ?", (now - 3600,)
                ).rowcount,
            }
        return counts

    def counts(self) -> dict[str, int]:
        """Return the number of rows in each table (for status and tests)."""
        tables = (
            "members",
            "invites",
            "blocked",
            "alerts",
            "deliveries",
            "rate",
            "log_entries",
            "registry_versions",
            "requests",
            "request_recipients",
            "answers",
            "clips",
            "announcements",
            "announcement_deliveries",
            "announcement_tallies",
            "alert_recipients",
            "alert_attachments",
        )
        with self._lock:
            counts = {
                name: self._db.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                for name in tables
            }
            # Message ids and hop nonces share the replay table; count them apart.
            counts["replay"], counts["nonces"] = self._db.execute(
                "SELECT count(*) FILTER (WHERE iss NOT LIKE 'hop:%'),"
                " count(*) FILTER (WHERE iss LIKE 'hop:%') FROM replay"
            ).fetchone()
        return counts

    def stored_tokens(self) -> list[str]:
        """Return every stored alert token (for audits and tests)."""
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT token FROM alerts ORDER BY rowid")]

    def __enter__(self) -> GatewayStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
