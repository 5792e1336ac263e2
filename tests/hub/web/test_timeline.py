"""The recordings page's pure rules: days, times of day and spans, for any input."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import UsageError
from hub.web.timeline import day_of, merge_spans, parse_day

TODAY = date(2026, 11, 28)


@given(st.text(max_size=40))
def test_any_day_text_is_a_day_or_one_clear_error(text):
    try:
        day = parse_day(text, TODAY)
    except UsageError as err:
        assert str(err).startswith("day: ") and "\n" not in str(err)
        return
    assert day.date.isoformat() == (text or TODAY.isoformat())
    assert day.seconds in (23 * 3600, 24 * 3600, 25 * 3600)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(9998, 12, 30)))
def test_days_follow_each_other(value):
    day = day_of(value)
    assert day_of(value + timedelta(days=1)).start == day.end
    assert parse_day(value.isoformat(), TODAY) == day


@given(st.text(max_size=30))
def test_any_clock_text_is_a_moment_of_the_day_or_one_clear_error(text):
    day = day_of(TODAY)
    try:
        moment = day.at(text, "from")
    except UsageError as err:
        assert str(err).startswith("from: ") and "\n" not in str(err)
        return
    assert day.start <= moment < day.end


def test_the_errors_people_see():
    with pytest.raises(UsageError, match=r"^day: '2026-02-30' is not a day on the calendar$"):
        parse_day("2026-02-30", TODAY)
    with pytest.raises(UsageError, match=r"^day: 'yesterday' is not a day \(example: 2026-11-28\)$"):
        parse_day("yesterday", TODAY)
    with pytest.raises(UsageError, match=r"^from: '25:00' is not a time of day \(example: 14:05:30\)$"):
        day_of(TODAY).at("25:00", "from")


pieces = st.lists(st.tuples(st.floats(-1e5, 2e5), st.floats(0, 600)).map(
    lambda p: (p[0], p[0] + p[1])), max_size=50)


@given(pieces)
def test_spans_are_ordered_apart_and_inside_the_day(parts):
    spans = merge_spans(parts, 86400.0)
    for span in spans:
        assert 0.0 <= span.start <= span.end <= 86400.0
    for a, b in zip(spans, spans[1:], strict=False):
        assert b.start - a.end > 1.5
    # Every moment of a piece inside the day is covered by a span.
    for start, end in parts:
        middle = (start + end) / 2
        if 0 < middle < 86400:
            assert any(s.start <= middle <= s.end for s in spans)
