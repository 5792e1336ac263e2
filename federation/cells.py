"""H3 cell helpers for coarse, privacy-preserving locations.

A hub registers only its H3 resolution-7 cell (about 5 km², edge about 1.4 km), never its
exact location. The gateway routes an agency request to every cell that could touch the
request's circle; each hub then checks the exact distance itself.
"""

from __future__ import annotations

import math
import re

import h3

DEFAULT_RES = 7
EARTH_RADIUS_M = 6_371_007.180918475  # the mean radius h3 uses for great-circle distances
# H3 writes cells as 15 lower-case hex digits; accept only that canonical form so one cell
# has exactly one spelling (routing tables and logs compare strings).
_CELL_TEXT = re.compile(r"[0-9a-f]{15}")
# Floating-point and spherical-approximation slack added to every distance bound.
_MARGIN_M = 10.0


def _check_latlon(lat: float, lon: float) -> None:
    for name, value, limit in (("lat", lat, 90.0), ("lon", lon, 180.0)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, got {type(value).__name__}")
        if not math.isfinite(value) or abs(value) > limit:
            raise ValueError(f"{name} must be between -{limit:g} and {limit:g}, got {value!r}")


def _check_res(res: int) -> None:
    if isinstance(res, bool) or not isinstance(res, int) or not 0 <= res <= 15:
        raise ValueError(f"H3 resolution must be an integer 0..15, got {res!r}")


def is_valid_cell(cell: object, res: int = DEFAULT_RES) -> bool:
    """Tell whether a value is a canonical H3 cell string at the given resolution."""
    if not isinstance(cell, str) or not _CELL_TEXT.fullmatch(cell):
        return False
    return bool(h3.is_valid_cell(cell)) and h3.get_resolution(cell) == res


def cell_for(lat: float, lon: float, res: int = DEFAULT_RES) -> str:
    """Return the H3 cell containing a point."""
    _check_latlon(lat, lon)
    _check_res(res)
    return h3.latlng_to_cell(float(lat), float(lon), res)


def neighbour_cells(cell: str, k: int) -> set[str]:
    """Return every cell within k grid steps of a cell, the cell itself included."""
    if not isinstance(cell, str) or not h3.is_valid_cell(cell):
        raise ValueError(f"not a valid H3 cell: {cell!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    return set(h3.grid_disk(cell, k))


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Return the great-circle distance between two points in metres."""
    _check_latlon(lat1, lon1)
    _check_latlon(lat2, lon2)
    return float(h3.great_circle_distance((lat1, lon1), (lat2, lon2), unit="m"))


def _circumradius_m(cell: str) -> float:
    """Return the distance from a cell's centre to its farthest boundary vertex."""
    centre = h3.cell_to_latlng(cell)
    return max(h3.great_circle_distance(centre, v, unit="m") for v in h3.cell_to_boundary(cell))


def cells_covering_circle(
    lat: float, lon: float, radius_m: float, res: int = DEFAULT_RES
) -> set[str]:
    """Return every cell whose hexagon may intersect a circle (a generous superset)."""
    # Why a flood fill and not polygon_to_cells: a cell that intersects the circle has a
    # point within radius_m of the centre, so its own centre lies within
    # radius_m + circumradius (triangle inequality). The cells that intersect a disc form
    # one connected patch around the centre's cell, so a breadth-first walk over neighbours
    # that pass this bound finds all of them, plus a thin rim of cells that merely come
    # close. Unlike approximating the circle by a polygon, this never misses a sliver at a
    # hexagon corner and works across the antimeridian and near pentagons; the rim is the
    # price of being sure, and it only means a few more hubs see (and discard) the request.
    _check_latlon(lat, lon)
    _check_res(res)
    if isinstance(radius_m, bool) or not isinstance(radius_m, int | float):
        raise ValueError(f"radius_m must be a number, got {type(radius_m).__name__}")
    if not math.isfinite(radius_m) or radius_m < 0:
        raise ValueError(f"radius_m must be a non-negative number, got {radius_m!r}")
    if radius_m > EARTH_RADIUS_M * math.pi / 4:
        raise ValueError(f"radius_m {radius_m!r} is too large to route by cells")
    centre = (float(lat), float(lon))
    start = h3.latlng_to_cell(centre[0], centre[1], res)
    found = {start}
    frontier = [start]
    seen = {start}
    while frontier:
        next_frontier = []
        for cell in frontier:
            for neighbour in h3.grid_disk(cell, 1):
                if neighbour in seen:
                    continue
                seen.add(neighbour)
                gap = h3.great_circle_distance(centre, h3.cell_to_latlng(neighbour), unit="m")
                if gap <= radius_m + _circumradius_m(neighbour) + _MARGIN_M:
                    found.add(neighbour)
                    next_frontier.append(neighbour)
        frontier = next_frontier
    return found
