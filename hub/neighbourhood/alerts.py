"""The hub's alerts feed: alerts it posted and alerts neighbours sent, each with how it was verified.

Alerts are stored as the exact JWS that was verified, so any hub or auditor can check them again.
Attachments are photos or clips the owner chose to share (faces blurred by default); they are
neighbourhood-public by intent and are kept beside the feed, not in the footage vault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from federation.jws import VerifiedMessage
from federation.member.client import alert_id
from federation.schemas import ALERT_CATEGORIES
from hub.errors import UsageError
from hub.timeutil import iso, utcnow

# How the hub came to trust an alert, as the owner sees it.
OWN = "posted by this hub"
VERIFIED_MEMBER = "verified neighbourhood hub"
LAN_NEIGHBOUR = "LAN neighbour (key from the LAN, not vouched for by a gateway)"
LAW_ENFORCEMENT = "verified law enforcement"


def parse_category(text: str) -> str:
    """Accept a category as the owner types it ("lost pet") or as the protocol spells it."""
    value = text.strip().lower().replace(" ", "_").replace("-", "_")
    if value not in ALERT_CATEGORIES:
        shown = ", ".join(c.replace("_", " ") for c in ALERT_CATEGORIES)
        raise UsageError(f"--category: {text!r} is not a category (choose one of: {shown})")
    return value


@dataclass(frozen=True)
class StoredAlert:
    """One alert of the feed."""

    id: str
    author: str
    category: str
    text: str
    cell: str
    issued: datetime
    expires: datetime
    received: datetime
    via: str
    verification: str
    attachments: list[dict]

    def as_json(self) -> dict:
        """Return the alert as `alerts list --json` prints it."""
        return {
            "id": self.id, "author": self.author, "category": self.category, "text": self.text,
            "cell": self.cell, "issued": iso(self.issued), "expires": iso(self.expires),
            "received": iso(self.received), "via": self.via, "verification": self.verification,
            "attachments": self.attachments,
        }


def store_alert(db, token: str, message: VerifiedMessage, *, via: str, verification: str) -> bool:
    """Keep a verified alert; return False if the feed already has it (a repeat delivery)."""
    row = alert_row(token, message, via=via, verification=verification)
    with db.write_lock:
        if db.execute("select 1 from alerts where id = ?", [row["id"]]).fetchone():
            return False
        db["alerts"].insert(row)
    return True


def alert_row(token: str, message: VerifiedMessage, *, via: str, verification: str) -> dict:
    """Return the feed's row for a verified alert."""
    claims = message.claims
    return {
        "id": alert_id(token), "author": message.kid, "category": claims["category"],
        # Announcements carry no cell (an optional area instead): "" for them.
        "text": claims["text"], "cell": claims.get("cell", ""),
        "issued": iso(datetime.fromtimestamp(claims["iat"], UTC)),
        "expires": iso(datetime.fromtimestamp(claims["exp"], UTC)),
        "received": iso(utcnow()), "via": via, "verification": verification,
        "attachments": json.dumps(claims.get("attachments", [])), "token": token,
    }


def list_alerts(db, now: datetime | None = None) -> list[StoredAlert]:
    """Return the alerts that have not expired, newest first."""
    now = now or utcnow()
    rows = db["alerts"].rows_where('"expires" > ?', [iso(now)], order_by="issued desc")
    return [
        StoredAlert(
            id=r["id"], author=r["author"], category=r["category"], text=r["text"], cell=r["cell"],
            issued=datetime.fromisoformat(r["issued"]), expires=datetime.fromisoformat(r["expires"]),
            received=datetime.fromisoformat(r["received"]), via=r["via"],
            verification=r["verification"], attachments=json.loads(r["attachments"] or "[]"),
        )
        for r in rows
    ]


def with_local_copies(alert: StoredAlert, data) -> dict:
    """Return the alert's JSON with, for each attachment, whether this hub holds a copy."""
    from hub.neighbourhood.attachments import attachments_dir

    shown = alert.as_json()
    folder = attachments_dir(data)
    for attachment in shown["attachments"]:
        attachment["local"] = (folder / attachment["sha256"]).exists()
    return shown
