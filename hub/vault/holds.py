"""The owner's holds: a range of a camera's footage kept from retention under a label, listed and
released by that label (`porchlight footage hold|release` and the recordings page).

Agency-request holds live in the same table under another kind; nothing here touches them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from hub.errors import UsageError
from hub.timeutil import from_iso, iso_second
from hub.vault.store import Vault

OWNER = "owner"
MAX_LABEL = 64
# Printable and unambiguous in a list and on a command line: no control characters or quotes.
_LABEL = re.compile(r"[\w .,:#/+()-]+\Z")


@dataclass(frozen=True)
class OwnerHold:
    """One label of the owner's holds: what it keeps."""

    label: str
    cameras: tuple[str, ...]
    segments: int
    start: datetime
    end: datetime
    created: datetime

    def as_json(self) -> dict:
        """Return the hold as a JSON object."""
        return {"label": self.label, "cameras": list(self.cameras), "segments": self.segments,
                "start": iso_second(self.start), "end": iso_second(self.end),
                "created": iso_second(self.created)}


def check_label(label: str) -> str:
    """Return a hold's label trimmed, or raise UsageError saying what is wrong with it."""
    label = label.strip()
    if not label:
        raise UsageError("the label is empty: name the hold so that you can release it later")
    if len(label) > MAX_LABEL:
        raise UsageError(f"the label has {len(label)} characters; the limit is {MAX_LABEL}")
    if not _LABEL.match(label):
        raise UsageError("the label may hold letters, digits, spaces and . , : # / + ( ) - _ only")
    return label


def check_range(start: datetime, end: datetime) -> None:
    """Refuse a hold range that does not end after it starts."""
    if end <= start:
        raise UsageError(f"the hold must end after it starts ({iso_second(start)} to "
                         f"{iso_second(end)})")


def hold_range(vault: Vault, camera: str, start: datetime, end: datetime, label: str) -> int:
    """Hold a camera's footage in [start, end) under a label; return how many segments it added."""
    label = check_label(label)
    check_range(start, end)
    segments = vault.segments(camera, start, end)
    if not segments:
        raise UsageError(f"no footage of {camera} between {iso_second(start)} and "
                         f"{iso_second(end)} to hold")
    # Holding a range twice under one label keeps one row per segment, so the counts stay true.
    already = {r[0] for r in vault.db.execute(
        "select segment_id from holds where kind = ? and reference = ?", [OWNER, label])}
    return vault.hold([s for s in segments if s.id not in already], OWNER, label)


def release_label(vault: Vault, label: str) -> int:
    """Lift the owner's holds with this label; raise UsageError when there are none."""
    label = label.strip()[:MAX_LABEL + 1]
    count = vault.release(OWNER, label)
    if count == 0:
        raise UsageError(f"no hold is labelled {label!r}")
    return count


def owner_holds(vault: Vault, camera: str | None = None) -> list[OwnerHold]:
    """List the owner's holds by label (of one camera, or all), newest first."""
    where, args = "h.kind = ?", [OWNER]
    if camera is not None:
        where += " and s.camera = ?"
        args.append(camera)
    rows = vault.db.execute(
        'select h.reference, group_concat(distinct s.camera), count(distinct s.id), min(s.start), '
        f'max(s."end"), min(h.created) from holds h join segments s on s.id = h.segment_id '
        f'where {where} group by h.reference order by min(h.created) desc, h.reference',
        args).fetchall()
    return [OwnerHold(label, tuple(sorted(cameras.split(","))), count, from_iso(first),
                      from_iso(last), from_iso(created))
            for label, cameras, count, first, last, created in rows]
