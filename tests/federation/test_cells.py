"""H3 cell helpers: validity, neighbours, distances and the circle cover."""

from __future__ import annotations

import math

import h3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.cells import (
    EARTH_RADIUS_M,
    cell_for,
    cells_covering_circle,
    distance_m,
    is_valid_cell,
    neighbour_cells,
)

AMSTERDAM = (52.37, 4.89)
AMSTERDAM_CELL = "871969c9bffffff"


def destination(lat: float, lon: float, bearing_deg: float, distance: float) -> tuple[float, float]:
    """Return the point reached by going distance metres from (lat, lon) on a bearing."""
    phi1, lam1, theta = math.radians(lat), math.radians(lon), math.radians(bearing_deg)
    delta = distance / EARTH_RADIUS_M
    phi2 = math.asin(
        math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(delta) * math.cos(theta)
    )
    lam2 = lam1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi1),
        math.cos(delta) - math.sin(phi1) * math.sin(phi2),
    )
    lon2 = (math.degrees(lam2) + 540) % 360 - 180
    return math.degrees(phi2), lon2


def test_cell_for_a_known_place() -> None:
    assert cell_for(*AMSTERDAM) == AMSTERDAM_CELL
    assert is_valid_cell(AMSTERDAM_CELL)
    assert cell_for(*AMSTERDAM, res=9) != AMSTERDAM_CELL
    assert h3.cell_to_parent(cell_for(*AMSTERDAM, res=9), 7) == AMSTERDAM_CELL


@pytest.mark.parametrize(
    "value",
    [
        cell_for(52.37, 4.89, res=8),
        AMSTERDAM_CELL.upper(),
        f" {AMSTERDAM_CELL}",
        f"{AMSTERDAM_CELL}\n",
        "871969c9bfffff",
        "",
        "zzzzzzzzzzzzzzz",
        None,
        599686042433355775,  # the same cell as an integer
        ["871969c9bffffff"],
    ],
)
def test_is_valid_cell_rejects(value: object) -> None:
    assert is_valid_cell(value) is False


def test_is_valid_cell_checks_the_resolution() -> None:
    fine = cell_for(*AMSTERDAM, res=8)
    assert is_valid_cell(fine, res=8)
    assert not is_valid_cell(fine)


def test_neighbour_cells() -> None:
    ring = neighbour_cells(AMSTERDAM_CELL, 1)
    assert len(ring) == 7 and AMSTERDAM_CELL in ring
    assert neighbour_cells(AMSTERDAM_CELL, 0) == {AMSTERDAM_CELL}
    assert len(neighbour_cells(AMSTERDAM_CELL, 2)) == 19
    with pytest.raises(ValueError, match="not a valid H3 cell"):
        neighbour_cells("nonsense", 1)
    with pytest.raises(ValueError, match="k must be a non-negative integer"):
        neighbour_cells(AMSTERDAM_CELL, -1)


def test_distance_m() -> None:
    assert distance_m(0, 0, 0, 1) == pytest.approx(111_195.08, abs=0.1)
    assert distance_m(*AMSTERDAM, *AMSTERDAM) == 0
    a, b = (52.3676, 4.9041), (52.0907, 5.1214)  # Amsterdam to Utrecht, about 34 km
    assert distance_m(*a, *b) == pytest.approx(34_000, rel=0.05)
    assert distance_m(*a, *b) == pytest.approx(distance_m(*b, *a))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((91, 0), "lat must be between -90 and 90, got 91"),
        ((0, -180.5), "lon must be between -180 and 180, got -180.5"),
        ((math.nan, 0), "lat must be between -90 and 90, got nan"),
        (("52.3", 4.8), "lat must be a number, got str"),
    ],
)
def test_bad_coordinates(args: tuple[object, object], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        cell_for(*args)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_cover_of_a_small_circle_is_small() -> None:
    cover = cells_covering_circle(*AMSTERDAM, 650)
    assert AMSTERDAM_CELL in cover
    assert cover <= neighbour_cells(AMSTERDAM_CELL, 1)
    assert cells_covering_circle(*AMSTERDAM, 0) >= {AMSTERDAM_CELL}


def test_cover_across_the_antimeridian_and_near_a_pole() -> None:
    cover = cells_covering_circle(0.0, 179.999, 2_000)
    assert cell_for(0.0, -179.99) in cover and cell_for(0.0, 179.98) in cover
    polar = cells_covering_circle(89.99, 0.0, 3_000)
    assert cell_for(89.99, 180.0) in polar


@pytest.mark.parametrize(
    ("radius", "message"),
    [
        (-1, "radius_m must be a non-negative number, got -1"),
        (math.inf, "radius_m must be a non-negative number, got inf"),
        ("5", "radius_m must be a number, got str"),
        (1e8, "radius_m 100000000.0 is too large to route by cells"),
    ],
)
def test_cover_rejects_bad_radius(radius: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        cells_covering_circle(*AMSTERDAM, radius)  # type: ignore[arg-type]
    assert str(caught.value) == message


@settings(max_examples=150, deadline=None)
@given(
    lat=st.floats(min_value=-85, max_value=85),
    lon=st.floats(min_value=-180, max_value=180),
    radius=st.floats(min_value=0, max_value=5_000),
    samples=st.lists(
        st.tuples(st.floats(min_value=0, max_value=360), st.floats(min_value=0, max_value=1)),
        min_size=1,
        max_size=30,
    ),
)
def test_cover_contains_every_point_of_the_circle(
    lat: float, lon: float, radius: float, samples: list[tuple[float, float]]
) -> None:
    cover = cells_covering_circle(lat, lon, radius)
    assert all(is_valid_cell(cell) for cell in cover)
    # Every point inside the circle, and on its edge, lies in a covered cell.
    points = [destination(lat, lon, bearing, fraction * radius) for bearing, fraction in samples]
    points += [destination(lat, lon, bearing, radius) for bearing in range(0, 360, 5)]
    for point in points:
        assert cell_for(*point) in cover
