"""Camera events (motion): stored with a sealed snapshot, listed with the segments they link to."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from hub.timeutil import iso, utcnow
from hub.vault.store import Vault


def record_event(vault: Vault, camera: str, event: dict) -> dict:
    """Seal the event's snapshot into the vault and index the event; return its row."""
    start = datetime.fromtimestamp(event["start"], UTC)
    end = datetime.fromtimestamp(event["end"], UTC)
    snapshot_id = None
    if event.get("snapshot"):
        snapshot_id = vault.seal(camera, start, end, "image/jpeg", event["snapshot"]).id
    row = {
        "id": uuid.uuid4().hex, "camera": camera, "start": iso(start), "end": iso(end),
        "zones": json.dumps(sorted(event.get("zones", []))),
        "peak_area": float(event.get("peak_area", 0.0)), "snapshot_segment_id": snapshot_id,
        "created": iso(utcnow()),
    }
    with vault.db.write_lock:
        vault.db["events"].insert(row)
    return row


def list_events(vault: Vault, camera: str | None, start: datetime | None, end: datetime | None,
                roll: timedelta = timedelta(seconds=5)) -> list[dict]:
    """Return events overlapping the window, each with the ids of its footage segments."""
    where, args = [], {}
    if camera:
        where.append("camera = :camera")
        args["camera"] = camera
    if start:
        where.append('"end" > :start')
        args["start"] = iso(start)
    if end:
        where.append("start < :end")
        args["end"] = iso(end)
    rows = vault.db["events"].rows_where(" and ".join(where) or None, args, order_by="start")
    events = []
    for row in rows:
        first = datetime.fromisoformat(row["start"]) - roll
        last = datetime.fromisoformat(row["end"]) + roll
        segments = [s.id for s in vault.segments(row["camera"], first, last)
                    if s.media_type == "video/mp4"]
        events.append({
            "id": row["id"], "camera": row["camera"], "start": row["start"], "end": row["end"],
            "zones": json.loads(row["zones"] or "[]"), "peak_area": row["peak_area"],
            "snapshot": row["snapshot_segment_id"], "segments": segments,
        })
    return events
