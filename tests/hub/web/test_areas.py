"""The settings page's text for motion masks and zones: read, written back, and refused clearly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.web.areas import MAX_POINTS, AreaSyntaxError, format_areas, parse_areas
from plugins.detectors.motion import MotionConfig

coordinate = st.integers(0, 10_000).map(lambda n: n / 10_000)
polygon = st.lists(st.tuples(coordinate, coordinate), min_size=3, max_size=12)
zone_name = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_ .-]{0,20}[A-Za-z0-9_]", fullmatch=True)


@given(st.lists(polygon, max_size=4), st.dictionaries(zone_name, polygon, max_size=4))
def test_written_areas_read_back_the_same_and_suit_the_motion_detector(masks, zones):
    text = format_areas(masks, zones)
    assert parse_areas(text) == (masks, zones)
    MotionConfig(masks=masks, zones=zones)  # what the detector accepts, stored as is


@given(st.text(max_size=400))
def test_any_text_is_read_or_refused_with_a_typed_error(text):
    try:
        masks, zones = parse_areas(text)
    except AreaSyntaxError as err:
        assert str(err).startswith(("line ", "the areas text"))
    else:
        MotionConfig(masks=masks, zones=zones)


@pytest.mark.parametrize(("text", "error"), [
    ("mask 0,0 1,0 1,1", "line 1: start with 'mask:' or 'zone NAME:'"),
    ("\n# comment\nroad: 0,0 1,0 1,1", "line 3: start with 'mask:' or 'zone NAME:'"),
    ("mask: 0,0 1,0", "line 1: an area has 3 to 100 points, not 2"),
    ("mask: 0,0 1,0 1.5,1", "line 1: '1.5,1' is outside the picture (x and y go from 0 to 1)"),
    ("mask: 0,0 1,0 x,1", "line 1: 'x,1' is not a point x,y (example: 0.25,0.5)"),
    ("mask: 0,0 1,0 nan,1", "line 1: 'nan,1' is not a point x,y (example: 0.25,0.5)"),
    ("zone a: 0,0 1,0 1,1\nzone a: 0,0 1,0 1,1", "line 2: zone 'a' is defined twice"),
    ("zone a/b: 0,0 1,0 1,1", "line 1: a zone name is 1 to 64 letters, digits, spaces, '.', '-' or '_'"),
    ("mask: " + " ".join(["0,0"] * (MAX_POINTS + 1)), "line 1: an area has 3 to 100 points, not 101"),
    ("x" * 40_000, "the areas text has 40000 characters; the limit is 32768"),
])
def test_bad_areas_are_refused_naming_the_line(text, error):
    with pytest.raises(AreaSyntaxError) as caught:
        parse_areas(text)
    assert str(caught.value) == error
