"""Motion masks and zones as the settings page edits them: one area per line of text.

    mask: 0.10,0.05 0.40,0.05 0.40,0.30
    zone driveway: 0.50,0.60 0.95,0.60 0.95,0.98 0.50,0.98

Points are x,y in 0..1 of the picture's width and height, the way the motion detector reads
them (plugins/detectors/motion.py). The drawing script writes this text and the owner can
type it by hand, so the page works with the keyboard alone and without scripts.
"""

from __future__ import annotations

import math
import re

MAX_AREAS = 64
MAX_POINTS = 100
MIN_POINTS = 3
MAX_TEXT = 32 * 1024
_ZONE_NAME = re.compile(r"[\w .-]{1,64}")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")


class AreaSyntaxError(ValueError):
    """The areas text cannot be read; the message names the line and what is wrong."""


Polygon = list[tuple[float, float]]


def parse_areas(text: str) -> tuple[list[Polygon], dict[str, Polygon]]:
    """Read masks and zones from the settings page's text; raise AreaSyntaxError naming the line."""
    if len(text) > MAX_TEXT:
        raise AreaSyntaxError(f"the areas text has {len(text)} characters; the limit is {MAX_TEXT}")
    masks: list[Polygon] = []
    zones: dict[str, Polygon] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, colon, points = line.partition(":")
        if not colon:
            raise AreaSyntaxError(f"line {number}: start with 'mask:' or 'zone NAME:'")
        head = head.strip()
        polygon = _points(points, number)
        if head == "mask":
            if len(masks) >= MAX_AREAS:
                raise AreaSyntaxError(f"line {number}: at most {MAX_AREAS} masks")
            masks.append(polygon)
        elif head.startswith("zone ") or head.startswith("zone\t"):
            name = head[5:].strip()
            if not _ZONE_NAME.fullmatch(name):
                raise AreaSyntaxError(f"line {number}: a zone name is 1 to 64 letters, digits, "
                                      "spaces, '.', '-' or '_'")
            if name in zones:
                raise AreaSyntaxError(f"line {number}: zone {name!r} is defined twice")
            if len(zones) >= MAX_AREAS:
                raise AreaSyntaxError(f"line {number}: at most {MAX_AREAS} zones")
            zones[name] = polygon
        else:
            raise AreaSyntaxError(f"line {number}: start with 'mask:' or 'zone NAME:'")
    return masks, zones


def _points(text: str, number: int) -> Polygon:
    words = text.split()
    if not MIN_POINTS <= len(words) <= MAX_POINTS:
        raise AreaSyntaxError(f"line {number}: an area has {MIN_POINTS} to {MAX_POINTS} points, "
                              f"not {len(words)}")
    polygon = []
    for word in words:
        x, comma, y = word.partition(",")
        if not comma or not _NUMBER.fullmatch(x) or not _NUMBER.fullmatch(y):
            raise AreaSyntaxError(f"line {number}: {word[:20]!r} is not a point x,y "
                                  "(example: 0.25,0.5)")
        point = (float(x), float(y))
        if not all(0.0 <= v <= 1.0 and math.isfinite(v) for v in point):
            raise AreaSyntaxError(f"line {number}: {word[:20]!r} is outside the picture "
                                  "(x and y go from 0 to 1)")
        polygon.append(point)
    return polygon


def format_areas(masks: list, zones: dict) -> str:
    """Write masks and zones as the settings page shows them."""
    def points(polygon) -> str:
        return " ".join(f"{_number(x)},{_number(y)}" for x, y in polygon)

    lines = [f"mask: {points(m)}" for m in masks]
    lines += [f"zone {name}: {points(z)}" for name, z in zones.items()]
    return "\n".join(lines) + ("\n" if lines else "")


def _number(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"
