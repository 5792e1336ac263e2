"""Each person's notification switches: one on/off per trigger, kept in the hub's database.

A trigger nobody has switched is on. A viewer has only the triggers about what they may see
(motion and cameras, of the cameras shared with them, and neighbourhood alerts); agency
requests, the disk and the fork alarm are the owner's business.
"""

from __future__ import annotations

import sqlite_utils

from hub.config import NOTIFY_TRIGGERS
from hub.errors import UsageError
from hub.people import HOUSEHOLD, OWNER

VIEWER_TRIGGERS = ("alert", "motion", "camera")


def triggers_for_role(role: str) -> tuple[str, ...]:
    """Return the triggers a person of this role may switch on."""
    return NOTIFY_TRIGGERS if role == OWNER else VIEWER_TRIGGERS


def role_of(hub, person: str) -> str | None:
    """Return the person's role, or None if there is no such person."""
    if person == HOUSEHOLD:
        return OWNER
    found = hub.people.get(person)
    return None if found is None else found.role


def prefs_of(db: sqlite_utils.Database, person: str, role: str) -> dict[str, bool]:
    """Return each trigger the person may have, switched on or off."""
    stored = {row[0]: bool(row[1]) for row in db.execute(
        "select trigger, enabled from notify_prefs where person = ?", [person])}
    return {trigger: stored.get(trigger, True) for trigger in triggers_for_role(role)}


def is_on(db: sqlite_utils.Database, person: str, role: str, trigger: str) -> bool:
    """Say whether the person wants notifications of this trigger."""
    if trigger not in triggers_for_role(role):
        return False
    row = db.execute("select enabled from notify_prefs where person = ? and trigger = ?",
                     [person, trigger]).fetchone()
    return True if row is None else bool(row[0])


def set_prefs(db: sqlite_utils.Database, person: str, role: str, on: set[str]) -> dict[str, bool]:
    """Switch on exactly the triggers in `on` for the person (the others off); return them."""
    allowed = triggers_for_role(role)
    unknown = sorted(set(on) - set(allowed))
    if unknown:
        raise UsageError(f"no trigger {unknown[0]!r} for a {role}: choose from "
                         + ", ".join(allowed))
    prefs = {trigger: trigger in on for trigger in allowed}
    with db.write_lock:
        db["notify_prefs"].upsert_all(
            [{"person": person, "trigger": t, "enabled": int(v)} for t, v in prefs.items()],
            pk=("person", "trigger"))
    return prefs
