"""The gateway's SQLite state: invites, routing, per-hub sequences, TTL, blocks, limits."""

from __future__ import annotations

import sqlite3

import pytest

from federation.cells import cell_for, neighbour_cells
from federation.errors import ReplayDetected
from federation.gateway.errors import AlreadyMember, HubBlocked, InviteInvalid, RateLimited
from federation.gateway.store import GatewayStore, Replay
from federation.keys import generate_signing_key

NOW = 1_750_000_000.0
HOME = cell_for(52.3731, 4.8926)
AWAY = cell_for(52.3731, 5.2)


@pytest.fixture
def store(tmp_path):
    with GatewayStore(tmp_path / "gateway.sqlite", create=True) as s:
        yield s


def add(store, cell=HOME, now=NOW):
    key = generate_signing_key()
    invite = key.kid[:4]
    store.add_invite(invite, "S" * 16, now=now, ttl_s=3600)
    store.add_member(
        kid=key.kid,
        jwk=key.public_jwk,
        hop_kid=key.kid,
        hop_jwk=key.public_jwk,
        cell=cell,
        invite_id=invite,
        invite_secret="S" * 16,
        replay=Replay(key.kid, "reg-" + key.kid[:8], now + 3600),
        now=now,
    )
    return key.kid


def alert(store, author, n, *, cells=(HOME,), now=NOW, expires=NOW + 3600, limit=100):
    return store.add_alert(
        alert_id=f"{n:064x}",
        author=author,
        token=f"tok.{n}.sig",
        cell=HOME,
        category="safety",
        replay=Replay(author, f"jti-{n}", expires),
        expires_at=expires,
        recipient_cells=cells,
        limit=limit,
        window_s=3600,
        now=now,
    )


def test_invites_are_stored_hashed_and_used_once(tmp_path, store):
    secret = "K7Q2M9XDPRTV3W4Z"
    store.add_invite("ABCD", secret, now=NOW, ttl_s=60)
    store.check_invite("ABCD", secret, now=NOW)
    for invite_id, attempt, when in (
        ("ABCD", "K7Q2M9XDPRTV3W4Y", NOW),
        ("ABCE", secret, NOW),
        ("ABCD", secret, NOW + 61),
    ):
        with pytest.raises(InviteInvalid):
            store.check_invite(invite_id, attempt, now=when)
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret.encode() not in raw


def test_member_joins_once_and_consumes_the_invite(store):
    kid = add(store)
    with pytest.raises(InviteInvalid):
        store.check_invite(kid[:4], "S" * 16, now=NOW)
    member = store.member(kid)
    assert (member.cell, member.last_seq, member.blocked) == (HOME, 0, False)
    assert store.member_by_hop_kid(kid) == member
    store.add_invite("ZZZZ", "S" * 16, now=NOW, ttl_s=60)
    with pytest.raises(AlreadyMember):
        store.add_member(
            kid=kid,
            jwk=member.jwk,
            hop_kid=kid,
            hop_jwk=member.jwk,
            cell=HOME,
            invite_id="ZZZZ",
            invite_secret="S" * 16,
            replay=Replay(kid, "again", NOW + 60),
            now=NOW,
        )
    store.check_invite("ZZZZ", "S" * 16, now=NOW)  # a refused join leaves the invite unused


def test_alerts_go_to_members_in_the_cells_but_the_author_in_order(store):
    author, near, far = add(store), add(store), add(store, cell=AWAY)
    cells = neighbour_cells(HOME, 1)
    assert alert(store, author, 1, cells=cells) == [(near, 1)]
    assert alert(store, near, 2, cells=cells) == [(author, 1)]
    assert alert(store, author, 3, cells=cells) == [(near, 2)]
    rows = store.deliveries_after(near, 0, limit=10, now=NOW)
    assert [(r.seq, r.token) for r in rows] == [(1, "tok.1.sig"), (2, "tok.3.sig")]
    assert store.deliveries_after(near, 1, limit=10, now=NOW)[0].seq == 2
    assert store.deliveries_after(far, 0, limit=10, now=NOW) == []


def test_replay_and_rate_limit_leave_nothing_behind(store):
    author, near = add(store), add(store)
    alert(store, author, 1, limit=2)
    before = store.counts()
    with pytest.raises(ReplayDetected):
        store.add_alert(
            alert_id="f" * 64,
            author=author,
            token="t.t.t",
            cell=HOME,
            category="safety",
            replay=Replay(author, "jti-1", NOW + 3600),
            expires_at=NOW + 3600,
            recipient_cells=[HOME],
            limit=2,
            window_s=3600,
            now=NOW,
        )
    assert store.counts() == before
    alert(store, author, 2, limit=2)
    before = store.counts()
    with pytest.raises(RateLimited) as caught:
        alert(store, author, 3, limit=2, now=NOW + 100)
    assert caught.value.retry_after == pytest.approx(3500)
    assert store.counts() == before
    alert(store, author, 3, limit=2, now=NOW + 3600)  # a new window
    assert store.member(near).last_seq == 3


def test_ttl_purge_and_acks(store):
    author, near = add(store), add(store)
    alert(store, author, 1, expires=NOW + 10)
    alert(store, author, 2, expires=NOW + 1000)
    alert(store, author, 3, expires=NOW + 1000)
    # Expired alerts are never delivered, even before the purge runs.
    assert [r.seq for r in store.deliveries_after(near, 0, limit=10, now=NOW + 20)] == [2, 3]
    store.record_acks({near: 2})
    counts = store.purge(now=NOW + 20)
    assert counts["alerts"] == 1 and counts["deliveries"] == 1  # seq 1 expired, seq 2 acked
    assert [r.seq for r in store.deliveries_after(near, 0, limit=10, now=NOW + 20)] == [3]
    store.record_acks({near: 1})  # acks never go backwards
    assert store.member(near).acked_seq == 2
    store.purge(now=NOW + 2000)
    assert store.counts()["alerts"] == store.counts()["deliveries"] == 0


def test_block_withdraws_alerts_and_stops_both_directions(store):
    author, near = add(store), add(store)
    alert(store, author, 1)
    assert store.block(author, note="spam", now=NOW) == 1
    assert store.deliveries_after(near, 0, limit=10, now=NOW) == []
    assert store.member(author).blocked
    with pytest.raises(HubBlocked):
        alert(store, author, 2)
    assert alert(store, near, 3) == []
    assert store.unblock(author) and not store.unblock(author)
    assert alert(store, near, 4) == [(author, 1)]


def test_rate_bucket_counts_per_hub(store):
    for _ in range(3):
        store.hit("a", "requests", limit=3, window_s=60, now=NOW)
    with pytest.raises(RateLimited):
        store.hit("a", "requests", limit=3, window_s=60, now=NOW + 1)
    store.hit("b", "requests", limit=3, window_s=60, now=NOW + 1)
    store.hit("a", "requests", limit=3, window_s=60, now=NOW + 60)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "g.sqlite"
    GatewayStore(path, create=True).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="Upgrade Porchlight"):
        GatewayStore(path)
    with pytest.raises(FileNotFoundError):
        GatewayStore(tmp_path / "missing.sqlite")


def test_version_2_database_is_upgraded_in_place(tmp_path):
    from federation.gateway.store import _SCHEMA, _SCHEMA_V2, SCHEMA_VERSION

    path = tmp_path / "g.sqlite"
    with sqlite3.connect(path) as db:
        for statement in _SCHEMA + _SCHEMA_V2:
            db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        db.execute("INSERT INTO meta (key, value) VALUES ('kept', 'yes')")
    with GatewayStore(path) as store:
        assert store.get_meta("kept") == "yes"
        counts = store.counts()
        assert counts["announcements"] == counts["alert_attachments"] == 0
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
