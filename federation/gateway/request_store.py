"""SQL for agency requests on the gateway: registry versions, requests, answers, sealed clips.

Functions named ``check_*`` run inside the log committer's transaction before an entry is
appended and raise to refuse it; ``ingest_*`` run after the append with the entry's index
(and again when the gateway re-indexes entries after a crash, so they take everything from
the entry itself). The rest are reads and the clip bookkeeping. Nothing here verifies a
signature: callers hand in messages that already verified.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from federation.errors import ReplayDetected
from federation.gateway.errors import (
    AlreadyAnswered,
    ClipMissing,
    NotRecipient,
    RequestClosed,
    RequestIdTaken,
    UnknownRequest,
)
from federation.gateway.store import REPLAY_LEEWAY_S, GatewayStore, Replay
from federation.keys import thumbprint
from federation.registry import RegistryRollback


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class RegistryRow:
    """A registry version the gateway accepted."""

    version: int
    log_index: int
    token: str
    authority_jwk: dict[str, str]
    exp: int
    agencies: dict[str, dict[str, str]]


@dataclass(frozen=True)
class RequestRow:
    """An agency request the gateway logged and routed."""

    id: str
    agency: str
    token: str
    log_index: int
    exp: int


@dataclass(frozen=True)
class AnswerRow:
    """A logged answer: ``hub`` is the member while the request lives, then the answer's key."""

    request_id: str
    hub: str
    decision: str
    token: str
    key_jwk: dict[str, str]  # the one-time key (the answers table's hub_jwk column)
    log_index: int

    @property
    def key_kid(self) -> str:
        """Return the kid of the one-time key that signed the answer."""
        return thumbprint(self.key_jwk)


@dataclass(frozen=True)
class ClipRow:
    """A sealed clip the gateway holds."""

    request_id: str
    sha256: str
    hub: str
    size: int
    expires_at: float
    listed: bool
    fetched_at: float | None


# -- the log index ----------------------------------------------------------------------------


def indexed_size(db: sqlite3.Connection) -> int:
    """Return how many log entries the database has indexed."""
    (value,) = db.execute("SELECT coalesce(max(log_index) + 1, 0) FROM log_entries").fetchone()
    return int(value)


def _index_entry(
    db: sqlite3.Connection,
    index: int,
    kind: str,
    signer: str,
    jwk: Mapping[str, str],
    request_id: str | None = None,
    decision: str | None = None,
) -> None:
    db.execute(
        "INSERT INTO log_entries (log_index, kind, signer, jwk, request_id, decision)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (index, kind, signer, _dumps(dict(jwk)), request_id, decision),
    )


def entry_keys(db: sqlite3.Connection, start: int, end: int) -> dict[int, tuple[str, dict]]:
    """Return {index: (kind, signer JWK)} for log entries in [start, end)."""
    rows = db.execute(
        "SELECT log_index, kind, jwk FROM log_entries WHERE log_index >= ? AND log_index < ?",
        (start, end),
    ).fetchall()
    return {row[0]: (row[1], json.loads(row[2])) for row in rows}


def tallies(db: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Return per agency kid the number of logged requests, approvals and denials."""
    counts: dict[str, dict[str, int]] = {}
    for agency, count in db.execute(
        "SELECT signer, count(*) FROM log_entries WHERE kind = 'request' GROUP BY signer"
    ):
        counts.setdefault(agency, {"requests": 0, "approvals": 0, "denials": 0})
        counts[agency]["requests"] = count
    for agency, decision, count in db.execute(
        "SELECT r.signer, a.decision, count(*) FROM log_entries a"
        " JOIN log_entries r ON r.kind = 'request' AND r.request_id = a.request_id"
        " WHERE a.kind = 'answer' GROUP BY r.signer, a.decision"
    ):
        slot = counts.setdefault(agency, {"requests": 0, "approvals": 0, "denials": 0})
        slot["approvals" if decision == "approved" else "denials"] += count
    return counts


# -- registry ---------------------------------------------------------------------------------


def _registry_row(row: tuple | None) -> RegistryRow | None:
    if row is None:
        return None
    return RegistryRow(
        version=row[0],
        log_index=row[1],
        token=row[2],
        authority_jwk=json.loads(row[3]),
        exp=row[4],
        agencies=json.loads(row[5]),
    )


_REGISTRY_COLUMNS = "version, log_index, token, authority_jwk, exp, agencies"


def current_registry(db: sqlite3.Connection) -> RegistryRow | None:
    """Return the newest registry version accepted, or None."""
    row = db.execute(
        f"SELECT {_REGISTRY_COLUMNS} FROM registry_versions ORDER BY version DESC LIMIT 1"
    ).fetchone()
    return _registry_row(row)


def registry_before(db: sqlite3.Connection, log_index: int) -> RegistryRow | None:
    """Return the registry version in force at a log index (the last one logged before it)."""
    row = db.execute(
        f"SELECT {_REGISTRY_COLUMNS} FROM registry_versions WHERE log_index < ?"
        " ORDER BY log_index DESC LIMIT 1",
        (log_index,),
    ).fetchone()
    return _registry_row(row)


def agencies_ever_listed(db: sqlite3.Connection) -> set[str]:
    """Return the kid of every agency any accepted registry version listed."""
    kids: set[str] = set()
    for (agencies,) in db.execute("SELECT agencies FROM registry_versions"):
        kids.update(json.loads(agencies))
    return kids


def check_registry(db: sqlite3.Connection, version: int) -> None:
    """Refuse a registry version that is not newer than the current one."""
    current = current_registry(db)
    if current is not None and version <= current.version:
        raise RegistryRollback(
            f"registry version {version} is not newer than version {current.version} "
            "this gateway already serves"
        )


def ingest_registry(
    db: sqlite3.Connection,
    index: int,
    *,
    token: str,
    version: int,
    exp: int,
    authority_kid: str,
    authority_jwk: Mapping[str, str],
    agencies: Mapping[str, Mapping[str, str]],
) -> None:
    """Record a logged registry version."""
    db.execute(
        f"INSERT INTO registry_versions ({_REGISTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        (version, index, token, _dumps(dict(authority_jwk)), exp, _dumps(dict(agencies))),
    )
    _index_entry(db, index, "registry", authority_kid, authority_jwk)


# -- requests ---------------------------------------------------------------------------------


def check_request(
    db: sqlite3.Connection,
    store: GatewayStore,
    *,
    request_id: str,
    agency: str,
    exp: int,
    limit: int,
    now: float,
) -> None:
    """Refuse a request over the agency's quota, or whose id is taken."""
    row = db.execute("SELECT agency FROM requests WHERE id = ?", (request_id,)).fetchone()
    if row is not None:
        if row[0] == agency:
            raise ReplayDetected(
                f"request {request_id} was already received; a replayed request is ignored"
            )
        raise RequestIdTaken(
            f"another agency's request already has id {request_id}; use a fresh random jti"
        )
    store.hit_in(db, agency, "agency_requests", limit=limit, window_s=3600.0, now=now)
    store.remember_in(db, Replay(agency, request_id, exp), now)


def ingest_request(
    db: sqlite3.Connection,
    index: int,
    *,
    request_id: str,
    agency: str,
    agency_jwk: Mapping[str, str],
    token: str,
    exp: int,
    cells: Iterable[str],
    now: float,
) -> list[tuple[str, int]]:
    """Record a logged request and queue it for the member hubs in the cells."""
    db.execute(
        "INSERT INTO requests (id, agency, token, log_index, exp, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (request_id, agency, token, index, exp, now),
    )
    _index_entry(db, index, "request", agency, agency_jwk, request_id=request_id)
    # After a crash the replay entry may be missing; keep it for the request's lifetime.
    db.execute(
        "INSERT INTO replay (iss, jti, keep_until) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        (agency, request_id, float(exp) + REPLAY_LEEWAY_S),
    )
    cells = sorted(set(cells))
    marks = ",".join("?" * len(cells))
    recipients = db.execute(
        f"UPDATE members SET last_seq = last_seq + 1 WHERE cell IN ({marks})"
        " AND kid NOT IN (SELECT kid FROM blocked) RETURNING kid, last_seq",
        cells,
    ).fetchall()
    db.executemany(
        "INSERT INTO request_recipients (request_id, hub, seq) VALUES (?, ?, ?)",
        [(request_id, kid, seq) for kid, seq in recipients],
    )
    return [(kid, seq) for kid, seq in recipients]


def request_row(db: sqlite3.Connection, request_id: str) -> RequestRow | None:
    """Return a request, or None."""
    row = db.execute(
        "SELECT id, agency, token, log_index, exp FROM requests WHERE id = ?", (request_id,)
    ).fetchone()
    return None if row is None else RequestRow(*row)


def get_request(db: sqlite3.Connection, request_id: str) -> RequestRow:
    """Return a request, or raise UnknownRequest."""
    row = request_row(db, request_id)
    if row is None:
        raise UnknownRequest(f"no request has id {request_id} at this gateway")
    return row


def is_recipient(db: sqlite3.Connection, request_id: str, hub: str) -> bool:
    """Tell whether a request was routed to a hub."""
    row = db.execute(
        "SELECT 1 FROM request_recipients WHERE request_id = ? AND hub = ?", (request_id, hub)
    ).fetchone()
    return row is not None


def check_recipient(db: sqlite3.Connection, request_id: str, hub: str) -> RequestRow:
    """Return the request if it exists and was routed to this hub, else raise."""
    request = get_request(db, request_id)
    if not is_recipient(db, request_id, hub):
        raise NotRecipient(
            f"request {request_id} was not routed to this hub, so it cannot answer it"
        )
    return request


def status_counts(db: sqlite3.Connection, request_id: str) -> dict[str, int]:
    """Return how many hubs were asked, approved, denied, and have not answered."""
    (asked,) = db.execute(
        "SELECT count(*) FROM request_recipients WHERE request_id = ?", (request_id,)
    ).fetchone()
    decided = dict(
        db.execute(
            "SELECT decision, count(*) FROM answers WHERE request_id = ? GROUP BY decision",
            (request_id,),
        ).fetchall()
    )
    approved = int(decided.get("approved", 0))
    denied = int(decided.get("denied", 0))
    (waiting,) = db.execute(
        "SELECT count(*) FROM clips WHERE request_id = ? AND listed = 1", (request_id,)
    ).fetchone()
    return {
        "asked": int(asked),
        "approved": approved,
        "denied": denied,
        "pending": max(0, int(asked) - approved - denied),
        "clips_waiting": int(waiting),
    }


# -- answers ----------------------------------------------------------------------------------


def answer_row(db: sqlite3.Connection, request_id: str, hub: str) -> AnswerRow | None:
    """Return a hub's answer to a request, or None."""
    row = db.execute(
        "SELECT request_id, hub, decision, token, hub_jwk, log_index FROM answers"
        " WHERE request_id = ? AND hub = ?",
        (request_id, hub),
    ).fetchone()
    if row is None:
        return None
    return AnswerRow(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5])


def check_not_answered(db: sqlite3.Connection, request_id: str, hub: str) -> None:
    """Raise AlreadyAnswered if the hub has answered the request."""
    if answer_row(db, request_id, hub) is not None:
        raise AlreadyAnswered(
            f"this hub has already answered request {request_id}; an answer is final"
        )


def check_answer(
    db: sqlite3.Connection,
    store: GatewayStore,
    *,
    request_id: str,
    hub: str,
    key_kid: str,
    replay: Replay,
    sealed: list[str],
    now: float,
) -> None:
    """Refuse an answer to an unknown, foreign or closed request, a second one, missing files."""
    request = check_recipient(db, request_id, hub)
    if now > request.exp + REPLAY_LEEWAY_S:
        raise RequestClosed(
            f"request {request_id} has expired; it can no longer be answered"
        )
    check_not_answered(db, request_id, hub)
    # The one-time key is derived from the hub's key and the request: a hub that lost its
    # first receipt, or a gateway that lost the member link in a crash, meets it again here.
    if db.execute(
        "SELECT 1 FROM log_entries WHERE kind = 'answer' AND request_id = ? AND signer = ?",
        (request_id, key_kid),
    ).fetchone():
        raise AlreadyAnswered(
            f"request {request_id} already has an answer under this key; an answer is final"
        )
    store.remember_in(db, replay, now)
    for position, sha256 in enumerate(sealed):
        row = db.execute(
            "SELECT 1 FROM clips WHERE request_id = ? AND sha256 = ? AND hub = ?",
            (request_id, sha256, hub),
        ).fetchone()
        if row is None:
            raise ClipMissing(
                f"sealed file {sha256[:16]}... was not uploaded by this hub; upload every "
                "clip and the custody file before the answer that lists them",
                field=f"clips[{position}]",
            )


def ingest_answer(
    db: sqlite3.Connection,
    index: int,
    *,
    request_id: str,
    hub: str,
    key_jwk: Mapping[str, str],
    decision: str,
    token: str,
    sealed: list[str],
    now: float,
) -> None:
    """Record a logged answer and mark the files it lists; only ``answers.hub`` names the member."""
    key_kid = thumbprint(key_jwk)
    db.execute(
        "INSERT INTO answers (request_id, hub, decision, token, hub_jwk, log_index, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (request_id, hub, decision, token, _dumps(dict(key_jwk)), index, now),
    )
    # The log index is public: it names the one-time key, never the member.
    _index_entry(db, index, "answer", key_kid, key_jwk, request_id=request_id, decision=decision)
    # From here on the held files belong to the answer's key, not to the member.
    db.executemany(
        "UPDATE clips SET listed = 1, hub = ? WHERE request_id = ? AND sha256 = ? AND hub = ?",
        [(key_kid, request_id, sha256, hub) for sha256 in sealed],
    )


def forget_answer_links(db: sqlite3.Connection, now: float) -> int:
    """Replace the member by the answer's key once its request has closed; return how many."""
    rows = db.execute(
        "SELECT a.request_id, a.hub, a.hub_jwk FROM answers a JOIN requests r"
        " ON r.id = a.request_id WHERE r.exp + ? < ?",
        (REPLAY_LEEWAY_S, now),
    ).fetchall()
    forgotten = 0
    for request_id, hub, jwk in rows:
        key_kid = thumbprint(json.loads(jwk))
        if hub != key_kid:
            db.execute(
                "UPDATE answers SET hub = ? WHERE request_id = ? AND hub = ?",
                (key_kid, request_id, hub),
            )
            forgotten += 1
    return forgotten


def approved_answers(db: sqlite3.Connection, request_id: str) -> list[AnswerRow]:
    """Return the approving answers to a request, in log order."""
    rows = db.execute(
        "SELECT request_id, hub, decision, token, hub_jwk, log_index FROM answers"
        " WHERE request_id = ? AND decision = 'approved' ORDER BY log_index",
        (request_id,),
    ).fetchall()
    return [AnswerRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]


# -- clips ------------------------------------------------------------------------------------


def clip_row(db: sqlite3.Connection, request_id: str, sha256: str) -> ClipRow | None:
    """Return a held clip, or None."""
    row = db.execute(
        "SELECT request_id, sha256, hub, size, expires_at, listed, fetched_at FROM clips"
        " WHERE request_id = ? AND sha256 = ?",
        (request_id, sha256),
    ).fetchone()
    if row is None:
        return None
    return ClipRow(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])


def clip_bytes_held(db: sqlite3.Connection) -> int:
    """Return the total size of every clip held."""
    (total,) = db.execute("SELECT coalesce(sum(size), 0) FROM clips").fetchone()
    return int(total)


def add_clip(
    db: sqlite3.Connection,
    *,
    request_id: str,
    sha256: str,
    hub: str,
    size: int,
    expires_at: float,
    now: float,
) -> None:
    """Record an uploaded clip."""
    db.execute(
        "INSERT INTO clips (request_id, sha256, hub, size, uploaded_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (request_id, sha256, hub, size, now, expires_at),
    )


def mark_fetched(
    db: sqlite3.Connection, request_id: str, sha256: str, *, now: float, keep_s: float
) -> None:
    """Record a complete download and shorten the clip's life to keep_s from now."""
    db.execute(
        "UPDATE clips SET fetched_at = ?, expires_at = min(expires_at, ?)"
        " WHERE request_id = ? AND sha256 = ?",
        (now, now + keep_s, request_id, sha256),
    )


def delete_clip(db: sqlite3.Connection, request_id: str, sha256: str) -> bool:
    """Forget a clip; return whether it was held."""
    cursor = db.execute(
        "DELETE FROM clips WHERE request_id = ? AND sha256 = ?", (request_id, sha256)
    )
    return cursor.rowcount > 0


def expired_clips(db: sqlite3.Connection, now: float) -> list[tuple[str, str]]:
    """Forget every clip past its time and return (request id, sha256) of each."""
    rows = db.execute(
        "DELETE FROM clips WHERE expires_at < ? RETURNING request_id, sha256", (now,)
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def clips_of(db: sqlite3.Connection, request_id: str, hub: str) -> dict[str, ClipRow]:
    """Return the held files of a request under one holder (member or answer key), by sha256."""
    rows = db.execute(
        "SELECT request_id, sha256, hub, size, expires_at, listed, fetched_at FROM clips"
        " WHERE request_id = ? AND hub = ?",
        (request_id, hub),
    ).fetchall()
    return {r[1]: ClipRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows}
