"""Replay stores: remember each message's ``(iss, jti)`` until it can no longer verify.

A message is live until ``exp`` plus the clock leeway; after that ``verify_message`` rejects it
as expired, so its ``(iss, jti)`` can be forgotten. Two implementations share one small
protocol: an in-memory one for tests and short-lived tools, and a SQLite one (a single WAL
file) for hubs and gateways, so a restart does not reopen the replay window.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from typing import Protocol

from federation.errors import ReplayDetected

log = logging.getLogger(__name__)

DEFAULT_LEEWAY_S = 60


def _replayed(iss: str, jti: str) -> ReplayDetected:
    return ReplayDetected(
        f"message {jti!r} from {iss} was already received; a replayed message is ignored",
    )


class ReplayStore(Protocol):
    """Remembers (iss, jti) pairs until their messages expire."""

    def check_and_remember(self, iss: str, jti: str, exp: float, now: float) -> None:
        """Record (iss, jti) until exp + leeway, or raise ReplayDetected if already live."""
        ...

    def purge(self, now: float) -> int:
        """Forget every pair whose message can no longer verify; return how many."""
        ...


class MemoryReplayStore:
    """A replay store held in a dict; it forgets everything on restart."""

    def __init__(self, *, leeway: float = DEFAULT_LEEWAY_S, purge_every: int = 1024) -> None:
        self.leeway = leeway
        self._until: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._purge_every = purge_every
        self._inserts = 0

    def check_and_remember(self, iss: str, jti: str, exp: float, now: float) -> None:
        """Record (iss, jti) until exp + leeway, or raise ReplayDetected if already live."""
        key = (iss, jti)
        with self._lock:
            until = self._until.get(key)
            if until is not None and until >= now:
                raise _replayed(iss, jti)
            self._until[key] = exp + self.leeway
            self._inserts += 1
            if self._inserts % self._purge_every == 0:
                self._purge_locked(now)

    def purge(self, now: float) -> int:
        """Forget every pair whose message can no longer verify; return how many."""
        with self._lock:
            return self._purge_locked(now)

    def _purge_locked(self, now: float) -> int:
        stale = [key for key, until in self._until.items() if until < now]
        for key in stale:
            del self._until[key]
        return len(stale)

    def __contains__(self, pair: object) -> bool:
        return pair in self._until

    def __len__(self) -> int:
        return len(self._until)


class SqliteReplayStore:
    """A replay store in one SQLite file (WAL), safe to share between threads."""

    def __init__(self, path: str | os.PathLike[str], *, leeway: float = DEFAULT_LEEWAY_S) -> None:
        self.leeway = leeway
        self._lock = threading.Lock()
        # Autocommit mode: each statement below is its own atomic transaction.
        self._db = sqlite3.connect(
            os.fspath(path), isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # A replay entry lost in a power cut would reopen the replay window, so sync fully.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS replay ("
            " iss TEXT NOT NULL, jti TEXT NOT NULL, keep_until REAL NOT NULL,"
            " PRIMARY KEY (iss, jti)) WITHOUT ROWID"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS replay_keep_until ON replay (keep_until)")

    def check_and_remember(self, iss: str, jti: str, exp: float, now: float) -> None:
        """Record (iss, jti) until exp + leeway, or raise ReplayDetected if already live."""
        # One statement checks and records atomically: it inserts a new pair, replaces a pair
        # whose message has expired, and changes nothing (rowcount 0) for a live pair.
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO replay (iss, jti, keep_until) VALUES (?, ?, ?)"
                " ON CONFLICT (iss, jti) DO UPDATE SET keep_until = excluded.keep_until"
                " WHERE replay.keep_until < ?",
                (iss, jti, float(exp) + self.leeway, float(now)),
            )
        if cursor.rowcount == 0:
            raise _replayed(iss, jti)

    def purge(self, now: float) -> int:
        """Forget every pair whose message can no longer verify; return how many."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM replay WHERE keep_until < ?", (float(now),))
        if cursor.rowcount:
            log.debug("purged %s expired replay entries", cursor.rowcount)
        return cursor.rowcount

    def __contains__(self, pair: object) -> bool:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            return False
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM replay WHERE iss = ? AND jti = ?", (pair[0], pair[1])
            ).fetchone()
        return row is not None

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM replay").fetchone()
        return int(count)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteReplayStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
