"""Numbers as people read them: "1 segment", "2 segments"."""

from __future__ import annotations


def plural(number: int, one: str, many: str | None = None) -> str:
    """Write a number with its noun in the singular or the plural ("1 segment", "0 segments")."""
    return f"{number} {one if number == 1 else (many or one + 's')}"
