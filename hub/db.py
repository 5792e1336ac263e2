"""The hub's SQLite database: the vault index, holds, repairs, and its migrations."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from hub.errors import PorchlightError

log = logging.getLogger(__name__)
# Copies of the database taken before each upgrade, kept beside it: the newest few.
KEEP_UPGRADE_COPIES = 3
UPGRADE_COPY = re.compile(r"\.before-v(\d+)$")


class SchemaError(PorchlightError):
    """The database could not be brought up to this release's schema."""


def _m1_vault(db: sqlite_utils.Database) -> None:
    db["segments"].create(
        {
            "id": str, "camera": str, "start": str, "end": str, "size": int,
            "media_type": str, "sha256": str, "path": str, "status": str, "created": str,
        },
        pk="id",
        not_null={"camera", "start", "end", "size", "media_type", "sha256", "path", "status"},
        defaults={"status": "ok"},
    )
    db["segments"].create_index(["camera", "start"])
    db["segments"].create_index(["path"], unique=True)
    db["holds"].create(
        {"id": int, "segment_id": str, "kind": str, "reference": str, "created": str},
        pk="id",
        foreign_keys=[("segment_id", "segments", "id")],
    )
    db["holds"].create_index(["segment_id"])
    db["repairs"].create(
        {"id": int, "at": str, "action": str, "path": str, "detail": str}, pk="id"
    )


def _m2_cameras(db: sqlite_utils.Database) -> None:
    db["events"].create(
        {"id": str, "camera": str, "start": str, "end": str, "zones": str, "peak_area": float,
         "snapshot_segment_id": str, "created": str},
        pk="id", not_null={"camera", "start", "end"},
    )
    db["events"].create_index(["camera", "start"])
    db["camera_state"].create(
        {"camera": str, "state": str, "detail": str, "since": str, "updated": str}, pk="camera"
    )


def _m3_neighbourhood(db: sqlite_utils.Database) -> None:
    db["alerts"].create(
        {"id": str, "author": str, "category": str, "text": str, "cell": str, "issued": str,
         "expires": str, "received": str, "via": str, "verification": str, "attachments": str,
         "token": str},
        pk="id", not_null={"author", "category", "text", "cell", "issued", "expires", "token"},
    )
    db["alerts"].create_index(["issued"])
    db["federation_state"].create({"key": str, "value": str}, pk="key")
    db["outbox"].create(
        {"id": str, "channel": str, "token": str, "created": str, "attempts": int,
         "last_error": str, "delivered": str, "delivered_to": str, "expires": str},
        pk="id",
    )


def _m4_requests(db: sqlite_utils.Database) -> None:
    db["requests"].create(
        {"id": str, "status": str, "detail": str, "agency_kid": str, "agency": str,
         "case_number": str, "reason": str, "legal_basis": str, "start": str, "end": str,
         "lat": float, "lon": float, "radius_m": float, "log_index": int, "recipient": str,
         "token": str, "received": str, "decided": str, "clips": str, "answer": str,
         "hold_until": str},
        pk="id", not_null={"status", "received"},
    )


def _m5_people(db: sqlite_utils.Database) -> None:
    db["people"].create({"name": str, "role": str, "recipient": str, "created": str}, pk="name",
                        not_null={"role", "recipient"})
    db["shares"].create({"person": str, "camera": str, "since": str}, pk=("person", "camera"))


def _m6_request_checkpoint(db: sqlite_utils.Database) -> None:
    # The log checkpoint a request was proved against, shown to the owner beside its index.
    db["requests"].add_column("checkpoint", str)


def _m7_answer_receipt(db: sqlite_utils.Database) -> None:
    # Where the log put this hub's answer, and the tlog-proof: the hub's proof it answered.
    db["requests"].add_column("answer_index", int)
    db["requests"].add_column("answer_proof", str)


def _m8_notify_prefs(db: sqlite_utils.Database) -> None:
    # Per-person switches of each notification trigger (hub/notify/prefs.py); a missing row is on.
    db["notify_prefs"].create({"person": str, "trigger": str, "enabled": int},
                              pk=("person", "trigger"), not_null={"enabled"})


def _m9_push_subscriptions(db: sqlite_utils.Database) -> None:
    # The browsers each person subscribed to Web Push (hub/notify/push_subscriptions.py).
    db["push_subscriptions"].create(
        {"id": str, "person": str, "endpoint": str, "p256dh": str, "auth": str, "label": str,
         "created": str},
        pk="id", not_null={"person", "endpoint", "p256dh", "auth", "created"})
    db["push_subscriptions"].create_index(["endpoint"], unique=True)
    db["push_subscriptions"].create_index(["person"])


# Migrations by hand: sqlite-utils has none of its own (the sqlite-migrate plugin is still a
# beta), and PRAGMA user_version is all a linear list needs.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m1_vault, _m2_cameras, _m3_neighbourhood, _m4_requests, _m5_people,
    _m6_request_checkpoint, _m7_answer_receipt, _m8_notify_prefs,
    _m9_push_subscriptions,
]


def connect(path: Path) -> sqlite_utils.Database:
    """Open the database (WAL, foreign keys, a busy timeout) and bring it up to date."""
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        db = sqlite_utils.Database(conn)
        # One writer at a time: camera threads, retention and the event loop share this connection.
        db.write_lock = threading.RLock()
        migrate(db, Path(path))
    except BaseException:
        conn.close()
        raise
    return db


def schema_version(db: sqlite_utils.Database) -> int:
    """Return the schema version the database is at (PRAGMA user_version)."""
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database, path: Path | None = None) -> None:
    """Apply the migrations this database has not seen yet, each in one transaction.

    A database that already holds data is first copied to `<path>.before-v<N>` (N the version
    it is upgraded to), so an upgrade that goes wrong can be undone by hand.
    """
    version, latest = schema_version(db), len(MIGRATIONS)
    if version > latest:
        raise SchemaError(
            f"the database is at schema version {version}, newer than this release of porchlight "
            f"knows ({latest}): upgrade porchlight, or restore a copy taken before the upgrade "
            f"(porchlight.db.before-v{version}, docs/backup.md)")
    if version == latest:
        return
    kept = ""
    if version > 0 and path is not None:
        copy = keep_upgrade_copy(db, path, latest)
        kept = f"; the copy taken before the upgrade is {copy.name}"
        log.info("database at schema version %s, upgrading to %s; a copy of it is kept in %s",
                 version, latest, copy.name)
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        try:
            with db.conn:
                db.execute("BEGIN IMMEDIATE")
                # Another process may have upgraded it since we looked: never apply a step twice.
                if schema_version(db) < number:
                    step(db)
                    db.execute(f"PRAGMA user_version = {number}")
        except Exception as err:
            why = (str(err).splitlines() or [""])[0] or type(err).__name__
            raise SchemaError(
                f"could not upgrade the database to schema version {number} ({step.__name__}: "
                f"{why}); it is left as it was, at version {number - 1}{kept}") from err


def keep_upgrade_copy(db: sqlite_utils.Database, path: Path, target: int) -> Path:
    """Copy the database to `<path>.before-v<target>` and prune the older copies to a few."""
    copy = path.with_name(f"{path.name}.before-v{target}")
    copy_database(db.conn, copy)
    copies = sorted((int(m.group(1)), p) for p in path.parent.glob(f"{path.name}.before-v*")
                    if (m := UPGRADE_COPY.search(p.name)))
    for _, old in copies[:-KEEP_UPGRADE_COPIES]:
        old.unlink(missing_ok=True)
    return copy


def copy_database(source: sqlite3.Connection, target: Path) -> None:
    """Write a consistent copy of an open database to target (mode 0600) with SQLite's backup API.

    One backup step reads the whole database in one read transaction, so the copy is the
    database as it was at one moment even while the hub writes to it (WAL lets writers go on).
    """
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        copy = sqlite3.connect(str(partial), isolation_level=None)
        try:
            source.backup(copy)
            # One self-contained file: no -wal beside the copy.
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
        fd = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
