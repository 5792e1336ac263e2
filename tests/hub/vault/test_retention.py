"""Retention rules (pure): by age and by disk budget, oldest first, never a held segment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.vault.retention import DiskUsage, RetentionPolicy, SegmentInfo, plan_prune

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def seg(name: str, days_ago: float, size: int = 100, held: bool = False) -> SegmentInfo:
    start = NOW - timedelta(days=days_ago)
    return SegmentInfo(name, start, start + timedelta(seconds=10), size, held)


def test_deletes_by_age_but_keeps_holds():
    plan = plan_prune([seg("old", 40), seg("held", 45, held=True), seg("new", 1)],
                      RetentionPolicy(max_age=timedelta(days=30)), NOW)
    assert plan.delete == ["old"]
    assert plan.reasons == {"old": "older than 30 days"}
    assert plan.freed == 100


def test_deletes_oldest_first_to_meet_the_byte_budget():
    segments = [seg("c", 1), seg("a", 3), seg("b", 2), seg("d", 0.5)]
    plan = plan_prune(segments, RetentionPolicy(max_bytes=250), NOW)
    assert plan.delete == ["a", "b"]
    assert not plan.still_over_budget


def test_free_space_budget():
    segments = [seg(str(i), 10 - i, size=1000) for i in range(10)]
    disk = DiskUsage(total=100_000, free=7_500)  # 10 % must stay free: 3 segments go
    plan = plan_prune(segments, RetentionPolicy(min_free_fraction=0.10), NOW, disk)
    assert plan.delete == ["0", "1", "2"]


def test_held_footage_can_leave_the_budget_exceeded():
    plan = plan_prune([seg("h1", 5, held=True), seg("h2", 4, held=True), seg("x", 3)],
                      RetentionPolicy(max_bytes=50), NOW)
    assert plan.delete == ["x"]
    assert plan.still_over_budget


segment_lists = st.lists(
    st.builds(
        SegmentInfo,
        id=st.uuids().map(str),
        start=st.integers(0, 90 * 86400).map(lambda s: NOW - timedelta(seconds=s)),
        end=st.just(NOW),
        size=st.integers(1, 10_000_000),
        held=st.booleans(),
    ),
    max_size=60,
    unique_by=lambda s: s.id,
).map(lambda items: [SegmentInfo(s.id, s.start, s.start + timedelta(seconds=10), s.size, s.held)
                     for s in items])
policies = st.builds(
    RetentionPolicy,
    max_age=st.none() | st.integers(1, 60).map(lambda d: timedelta(days=d)),
    max_bytes=st.none() | st.integers(1, 200_000_000),
    min_free_fraction=st.none() | st.floats(0.0, 0.5),
)
disks = st.none() | st.builds(DiskUsage, total=st.integers(10**8, 10**9), free=st.integers(0, 10**8))


@settings(max_examples=400, deadline=None)
@given(segment_lists, policies, disks)
def test_never_deletes_held_and_meets_the_budget_when_it_can(segments, policy, disk):
    plan = plan_prune(segments, policy, NOW, disk)
    by_id = {s.id: s for s in segments}
    assert len(set(plan.delete)) == len(plan.delete)
    assert not any(by_id[i].held for i in plan.delete)
    kept = [s for s in segments if s.id not in set(plan.delete)]
    deletable_left = [s for s in kept if not s.held]
    used = sum(s.size for s in kept)
    if deletable_left:
        if policy.max_bytes is not None:
            assert used <= policy.max_bytes
        if policy.min_free_fraction is not None and disk is not None:
            assert disk.free + plan.freed >= policy.min_free_fraction * disk.total
        assert not plan.still_over_budget
    if policy.max_age is not None:
        cutoff = NOW - policy.max_age
        assert all(s.held or s.end >= cutoff for s in kept)
    # Oldest first: nothing kept and deletable is older than something deleted for the budget.
    budget = [by_id[i] for i in plan.delete if plan.reasons[i] == "over the disk budget"]
    if budget and deletable_left:
        newest_deleted = max((s.end, s.start, s.id) for s in budget)
        assert all((s.end, s.start, s.id) > newest_deleted for s in deletable_left)
