"""The witness's memory: for each log it follows, the latest checkpoint it cosigned.

The check of the submitted old size against this record and the update to the new checkpoint
happen in one SQLite transaction (BEGIN IMMEDIATE), so two racing submissions can never roll the
record back (the race C2SP tlog-witness warns about).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from federation.tlog.note import NoteVerifier
from federation.tlog.witness import LogRecord, Update


class WitnessState:
    """Logs and their latest cosigned checkpoints, in the witness's SQLite file (a
    `federation.tlog.witness.WitnessMemory`)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                    timeout=30.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(
            "create table if not exists logs (origin text primary key, vkey text not null, "
            "size integer not null default 0, root_hash blob, checkpoint text)")

    def close(self) -> None:
        """Close the database."""
        self.conn.close()

    def add_log(self, origin: str, vkey: str) -> None:
        """Follow a log: its origin line and its note verifier key."""
        NoteVerifier.from_string(vkey)
        self.conn.execute("insert into logs (origin, vkey) values (?, ?) on conflict(origin) "
                          "do update set vkey = excluded.vkey", [origin, vkey])

    def logs(self) -> list[LogRecord]:
        """Return every log followed, by origin."""
        rows = self.conn.execute("select origin, vkey, size, root_hash, checkpoint from logs "
                                 "order by origin").fetchall()
        return [LogRecord(o, NoteVerifier.from_string(v), s, r or b"", c or "")
                for o, v, s, r, c in rows]

    def get(self, origin: str) -> LogRecord | None:
        """Return one log, or None if the witness does not follow it."""
        return next((r for r in self.logs() if r.origin == origin), None)

    def advance(self, origin: str, decide: Callable[[LogRecord], Update | None]
                ) -> LogRecord | None:
        """Atomically read a log's record, let decide() check the submission, and store its
        answer (size, root hash, checkpoint) if it returns one; return the record decide saw."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            record = self.get(origin)
            if record is None:
                self.conn.execute("ROLLBACK")
                return None
            update = decide(record)
            if update is not None:
                size, root_hash, checkpoint = update
                self.conn.execute("update logs set size = ?, root_hash = ?, checkpoint = ? "
                                  "where origin = ?", [size, root_hash, checkpoint, origin])
            self.conn.execute("COMMIT")
            return record
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
