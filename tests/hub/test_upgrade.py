"""Upgrades: a data dir made by the release with schema version 7 opens with the current code,
loses nothing, and leaves a copy of the database from before the upgrade; a failing migration
changes nothing."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import av
import pytest

import hub.db
from hub.db import MIGRATIONS

FIXTURE = Path(__file__).parent / "fixtures" / "datadir-v7"
FIXTURE_VERSION = 7  # main at 9a07289, before issue 12's migrations


def _tables(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, by table, in a stable order."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        names = [r[0] for r in db.execute(
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'")]
        return {name: sorted(db.execute(f"select * from [{name}]").fetchall(), key=repr)
                for name in names}


def _version(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


@pytest.fixture
def old_hub(tmp_path) -> Path:
    root = tmp_path / "hub"
    shutil.copytree(FIXTURE, root)
    (root / "keys").chmod(0o700)
    return root


def test_the_fixture_is_of_the_previous_schema():
    assert _version(FIXTURE / "porchlight.db") == FIXTURE_VERSION
    before = _tables(FIXTURE / "porchlight.db")
    for table in ("segments", "events", "requests", "people", "shares", "holds", "alerts",
                  "camera_state", "federation_state", "outbox"):
        assert before[table], f"the fixture has no {table}"


def test_a_data_dir_of_the_previous_schema_upgrades_and_keeps_everything(old_hub, cli, passfile,
                                                                         tmp_path, caplog):
    before = _tables(old_hub / "porchlight.db")
    caplog.set_level("INFO", logger="hub.db")
    code, out, err = cli("footage", "list", "--data", old_hub, "--json")
    assert code == 0, err
    latest = len(MIGRATIONS)
    assert _version(old_hub / "porchlight.db") == latest
    after = _tables(old_hub / "porchlight.db")
    for table, rows in before.items():
        # Migrations only add: each old row is still there with its old columns first.
        assert [row[:len(rows[0])] for row in after[table]] == rows, table
    copy = old_hub / f"porchlight.db.before-v{latest}"
    assert copy.is_file()
    assert copy.stat().st_mode & 0o777 == 0o600
    assert _version(copy) == FIXTURE_VERSION
    assert _tables(copy) == before
    assert (f"database at schema version {FIXTURE_VERSION}, upgrading to {latest}; a copy of it "
            f"is kept in porchlight.db.before-v{latest}") in caplog.text
    # The footage of the old release still decrypts and exports, and its people still exist.
    out_file = tmp_path / "porch.mp4"
    code, out, err = cli("footage", "export", "--data", old_hub, "--camera", "porch",
                         "--from", "2026-11-01T10:00:00Z", "--to", "2026-11-01T10:00:03Z",
                         "--out", out_file, "--passphrase-file", passfile)
    assert code == 0, err
    with av.open(str(out_file)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 15
    # Opened again: nothing pending, so no new copy and no log line.
    caplog.clear()
    assert cli("footage", "list", "--data", old_hub)[0] == 0
    assert "upgrading" not in caplog.text
    assert sorted(p.name for p in old_hub.glob("porchlight.db.before-v*")) == [copy.name]


def test_a_failing_migration_leaves_the_database_as_it_was(old_hub, cli, monkeypatch):
    before = _tables(old_hub / "porchlight.db")

    def _m99_broken(db):
        db["requests"].add_column("half_done", str)
        db["events"].delete_where()
        raise RuntimeError("disk said no\nand a second line")

    monkeypatch.setattr(hub.db, "MIGRATIONS", [*MIGRATIONS, _m99_broken])
    failing = len(MIGRATIONS) + 1
    code, out, err = cli("footage", "list", "--data", old_hub)
    assert (code, out) == (1, "")
    assert err == (f"porchlight: error: could not upgrade the database to schema version "
                   f"{failing} (_m99_broken: disk said no); it is left as it was, at version "
                   f"{failing - 1}; the copy taken before the upgrade is "
                   f"porchlight.db.before-v{failing}\n")
    # The steps before the broken one are done, each in its own transaction; the broken one
    # left nothing behind.
    assert _version(old_hub / "porchlight.db") == failing - 1
    after = _tables(old_hub / "porchlight.db")
    assert after["events"] == before["events"]
    with sqlite3.connect(old_hub / "porchlight.db") as db:
        columns = [r[1] for r in db.execute("PRAGMA table_info(requests)")]
    assert "half_done" not in columns
    assert _tables(old_hub / f"porchlight.db.before-v{failing}") == before


def test_a_database_newer_than_the_code_is_refused(old_hub, cli):
    with sqlite3.connect(old_hub / "porchlight.db") as db:
        db.execute("PRAGMA user_version = 1000")
    code, out, err = cli("footage", "list", "--data", old_hub)
    assert code == 1
    assert err == (f"porchlight: error: the database is at schema version 1000, newer than this "
                   f"release of porchlight knows ({len(MIGRATIONS)}): upgrade porchlight, or "
                   f"restore a copy taken before the upgrade (porchlight.db.before-v1000, "
                   f"docs/backup.md)\n")
    assert _version(old_hub / "porchlight.db") == 1000


def test_copies_before_upgrades_are_pruned_to_the_newest_few(old_hub, cli, monkeypatch):
    for number in (2, 3, 4, 5):
        (old_hub / f"porchlight.db.before-v{number}").write_bytes(b"old copy")
    assert cli("footage", "list", "--data", old_hub)[0] == 0
    kept = sorted(int(p.name.rsplit("-v", 1)[1]) for p in old_hub.glob("porchlight.db.before-v*"))
    assert kept == [4, 5, len(MIGRATIONS)]


def test_a_new_hub_takes_no_copy(hub_dir):
    assert not list(hub_dir.glob("porchlight.db.before-v*"))
    assert _version(hub_dir / "porchlight.db") == len(MIGRATIONS)


def test_run_upgrades_on_start_and_says_so_in_its_log(old_hub):
    import signal
    import subprocess
    import sys

    hub = subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "--http", "--data", old_hub,
                            "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in hub.stdout.readline()
    finally:
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(timeout=60) == 0
    log = hub.stderr.read()
    latest = len(MIGRATIONS)
    assert (f"INFO hub.db: database at schema version {FIXTURE_VERSION}, upgrading to {latest}; "
            f"a copy of it is kept in porchlight.db.before-v{latest}") in log
    assert "Traceback" not in log
    assert _version(old_hub / "porchlight.db") == latest
