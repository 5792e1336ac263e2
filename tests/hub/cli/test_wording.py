"""Messages for people: plurals that agree, and times written one way (ISO 8601 UTC, Z, seconds)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.vault.retention import RetentionPolicy, SegmentInfo, plan_prune
from hub.words import plural
from plugins.cameras.scene import write_clip

TO_THE_SECOND = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b")
ANY_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d[^\s]*")


@pytest.fixture(scope="module")
def clip5(tmp_path_factory):
    """Return a 5 s clip: one segment once imported."""
    path = tmp_path_factory.mktemp("media") / "clip5.mp4"
    write_clip(path, seconds=5.0, fps=15)
    return path


def test_one_segment_is_one_segment(hub_dir, cli, clip5, passfile, tmp_path):
    window = ["--camera", "porch", "--from", "2026-11-20T14:00:00Z", "--to",
              "2026-11-20T14:00:05Z"]

    assert cli("footage", "import", "--data", hub_dir, "--camera", "porch", "--start",
               "2026-11-20T14:00:00Z", clip5) == (
        0, "sealed 1 segment of porch into the vault\n", "")
    assert cli("footage", "hold", "--data", hub_dir, *window, "--reason", "insurance")[1] == (
        "held 1 segment (release with `porchlight footage release --reason insurance`)\n")
    assert cli("footage", "release", "--data", hub_dir, "--reason", "insurance")[1] == (
        "released 1 hold\n")
    assert cli("footage", "check", "--data", hub_dir)[1] == "checked 1 segment: all whole\n"
    assert cli("footage", "prune", "--data", hub_dir, "--dry-run")[1] == (
        "would delete 0 segments (0 bytes)\n")
    code, out, err = cli("footage", "export", "--data", hub_dir, *window, "--out",
                         tmp_path / "one.mp4", "--passphrase-file", passfile)
    assert (code, err) == (0, "")
    assert out.endswith(" from 1 segment\n")


def test_footage_list_writes_times_to_the_second(hub_dir, cli, clip5):
    assert cli("footage", "import", "--data", hub_dir, "--camera", "porch", "--start",
               "2026-11-20T14:00:00.250Z", clip5)[0] == 0

    code, out, _ = cli("footage", "list", "--data", hub_dir)

    row = out.splitlines()[1].split()
    assert row[1:3] == ["2026-11-20T14:00:00Z", "2026-11-20T14:00:05Z"]
    assert all(TO_THE_SECOND.fullmatch(time) for time in ANY_TIME.findall(out))


def test_a_reversed_window_is_written_to_the_second(hub_dir, cli):
    assert cli("footage", "list", "--data", hub_dir, "--from", "2026-11-21T00:00:00.5Z", "--to",
               "2026-11-20T00:00:00+02:00") == (
        2, "", "porchlight: error: --from 2026-11-21T00:00:00Z is after --to "
               "2026-11-19T22:00:00Z\n")


@pytest.mark.parametrize(("days", "reason"), [(1, "older than 1 day"), (30, "older than 30 days"),
                                              (0.5, "older than 0.5 days")])
def test_retention_reasons_agree_with_their_number(days, reason):
    now = datetime(2026, 11, 28, tzinfo=UTC)
    old = SegmentInfo("old", now - timedelta(days=40), now - timedelta(days=40), 10, False)

    plan = plan_prune([old], RetentionPolicy(max_age=timedelta(days=days)), now)

    assert plan.reasons == {"old": reason}


@given(st.integers(0, 10**6))
def test_plural_agrees_with_its_number(number):
    text = plural(number, "segment")

    assert text == (f"{number} segment" if number == 1 else f"{number} segments")
    assert plural(number, "try", "tries").endswith("try" if number == 1 else "tries")
