"""Replay stores: in memory and in SQLite, with the same behaviour."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from federation.errors import ReplayDetected
from federation.replay import MemoryReplayStore, ReplayStore, SqliteReplayStore

NOW = 1_750_000_000.0
ISS = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
OTHER = "A" * 43


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryReplayStore()
    else:
        with SqliteReplayStore(tmp_path / "replay.sqlite3") as sqlite_store:
            yield sqlite_store


def test_both_stores_follow_the_protocol(store: Any) -> None:
    typed: ReplayStore = store
    assert callable(typed.check_and_remember) and callable(typed.purge)


def test_second_sighting_is_a_replay(store: Any) -> None:
    store.check_and_remember(ISS, "j1", NOW + 600, NOW)
    with pytest.raises(ReplayDetected) as caught:
        store.check_and_remember(ISS, "j1", NOW + 600, NOW + 1)
    assert caught.value.reason == "replay"
    assert str(caught.value) == (
        f"message 'j1' from {ISS} was already received; a replayed message is ignored"
    )
    assert len(store) == 1 and (ISS, "j1") in store


def test_pairs_are_per_issuer(store: Any) -> None:
    store.check_and_remember(ISS, "j1", NOW + 600, NOW)
    store.check_and_remember(OTHER, "j1", NOW + 600, NOW)
    store.check_and_remember(ISS, "j2", NOW + 600, NOW)
    assert len(store) == 3


def test_pairs_are_kept_until_exp_plus_leeway(store: Any) -> None:
    exp = NOW + 600
    store.check_and_remember(ISS, "j1", exp, NOW)
    with pytest.raises(ReplayDetected):
        store.check_and_remember(ISS, "j1", exp, exp + 60)
    # Past exp + leeway the message itself no longer verifies, so the pair may be reused.
    store.check_and_remember(ISS, "j1", exp + 1000, exp + 61)
    with pytest.raises(ReplayDetected):
        store.check_and_remember(ISS, "j1", exp + 1000, exp + 900)
    assert len(store) == 1


def test_purge_forgets_only_dead_pairs(store: Any) -> None:
    store.check_and_remember(ISS, "short", NOW + 10, NOW)
    store.check_and_remember(ISS, "long", NOW + 10_000, NOW)
    assert store.purge(NOW + 70) == 0
    assert store.purge(NOW + 71) == 1
    assert (ISS, "short") not in store and (ISS, "long") in store
    assert store.purge(NOW + 71) == 0


def test_concurrent_sightings_admit_exactly_one(store: Any) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def attempt() -> None:
        barrier.wait()
        try:
            store.check_and_remember(ISS, "race", NOW + 600, NOW)
            outcomes.append("accepted")
        except ReplayDetected:
            outcomes.append("replay")

    threads = [threading.Thread(target=attempt, name=f"replay-{i}") for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(outcomes) == ["accepted"] + ["replay"] * 7


def test_memory_store_purges_as_it_grows() -> None:
    store = MemoryReplayStore(purge_every=10)
    for i in range(100):
        store.check_and_remember(ISS, f"j{i}", NOW + i, NOW + i + 100)
    assert len(store) <= 10


def test_sqlite_store_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    with SqliteReplayStore(path) as first:
        first.check_and_remember(ISS, "j1", NOW + 600, NOW)
    with SqliteReplayStore(path) as second:
        with pytest.raises(ReplayDetected):
            second.check_and_remember(ISS, "j1", NOW + 600, NOW + 5)
        assert len(second) == 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT iss, jti, keep_until FROM replay").fetchall() == [
            (ISS, "j1", NOW + 660)
        ]


def test_custom_leeway(tmp_path: Path) -> None:
    sqlite_store = SqliteReplayStore(tmp_path / "r.sqlite3", leeway=0)
    for store in (MemoryReplayStore(leeway=0), sqlite_store):
        store.check_and_remember(ISS, "j1", NOW + 10, NOW)
        store.check_and_remember(ISS, "j1", NOW + 20, NOW + 11)
        assert store.purge(NOW + 21) == 1
    sqlite_store.close()
