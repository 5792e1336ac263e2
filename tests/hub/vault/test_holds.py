"""The owner's holds (hub/vault/holds.py): the label parser against any text, and holding,
listing and releasing on a real vault."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import UsageError
from hub.service import Hub
from hub.timeutil import parse_time
from hub.vault.holds import MAX_LABEL, check_label, hold_range, owner_holds, release_label

ALLOWED = re.compile(r"[\w .,:#/+()-]+\Z")
MESSAGES = (
    "the label is empty: name the hold so that you can release it later",
    re.compile(r"the label has (\d+) characters; the limit is 64\Z"),
    "the label may hold letters, digits, spaces and . , : # / + ( ) - _ only",
)


@given(st.text(max_size=120))
def test_a_label_is_taken_trimmed_or_refused_with_one_of_three_errors(text):
    try:
        label = check_label(text)
    except UsageError as err:
        message = str(err)
        length = MESSAGES[1].match(message)
        assert message in (MESSAGES[0], MESSAGES[2]) or length, message
        if length:
            assert int(length[1]) == len(text.strip()) > MAX_LABEL
        return
    assert label == text.strip()
    assert 1 <= len(label) <= MAX_LABEL and ALLOWED.match(label)


@pytest.fixture
def hub(hub_dir):
    hub = Hub(hub_dir)
    yield hub
    hub.close()


def test_hold_list_and_release_on_a_real_vault(hub, clip25):
    from hub.vault.footage import import_files

    start = parse_time("2026-11-20T14:00:00Z")
    segments = import_files(hub, "porch", start, [clip25], progress=False)
    held = hold_range(hub.vault, "porch", start + timedelta(seconds=1),
                      start + timedelta(seconds=2), " claim 7 ")
    assert held == 1
    # Again, and over a wider range: only the segments not yet under this label are added.
    assert hold_range(hub.vault, "porch", start, start + timedelta(seconds=2), "claim 7") == 0
    assert hold_range(hub.vault, "porch", start, start + timedelta(seconds=25), "claim 7") == \
        len(segments) - 1
    hub.vault.hold(segments[:1], "request", "req-1")  # an agency request's hold: not listed
    [listed] = owner_holds(hub.vault)
    assert (listed.label, listed.cameras, listed.segments) == ("claim 7", ("porch",),
                                                                len(segments))
    assert listed.start == segments[0].start and listed.end == segments[-1].end
    assert owner_holds(hub.vault, "garage") == []
    with pytest.raises(UsageError, match=r"^the hold must end after it starts "):
        hold_range(hub.vault, "porch", start, start, "other")
    with pytest.raises(UsageError, match=r"^no footage of porch between 2026-11-21T00:00:00Z "
                                         r"and 2026-11-21T01:00:00Z to hold$"):
        hold_range(hub.vault, "porch", start + timedelta(hours=10), start + timedelta(hours=11),
                   "other")
    assert release_label(hub.vault, "claim 7") == len(segments)
    with pytest.raises(UsageError, match=r"^no hold is labelled 'claim 7'$"):
        release_label(hub.vault, "claim 7")
    assert hub.vault.held_ids() == {segments[0].id}  # the request's hold stays
