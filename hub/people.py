"""The people of a household: roles, their own age identities, and which cameras they see.

The owner signs in with the household passphrase and holds the household identity. Everyone
else the owner adds gets an age X25519 identity of their own, stored only sealed with their own
passphrase (age scrypt), so a role is enforced by encryption and not only by a check: from the
moment a camera is shared with a person, its new segments are also sealed to that person's
recipient, and nothing of a camera not shared with them is ever sealed to them. An `owner`
role sees every camera; a `viewer` sees the cameras shared with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyrage
import sqlite_utils

from hub.config import load_config
from hub.datadir import DataDir, write_private
from hub.errors import PassphraseError, UsageError
from hub.household import check_new_passphrase
from hub.passphrase_seal import SealError, open_sealed, seal, spend_open_work
from hub.timeutil import iso, utcnow

OWNER = "owner"
VIEWER = "viewer"
ROLES = (OWNER, VIEWER)
# The household's own account: it signs in with the household passphrase.
HOUSEHOLD = "owner"
PERSON_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Person:
    """Someone who may sign in to the hub's web UI."""

    name: str
    role: str
    recipient: str
    cameras: tuple[str, ...]
    created: str

    def sees(self, camera: str) -> bool:
        """Say whether this person may see the camera (live and recorded)."""
        return self.role == OWNER or camera in self.cameras

    def as_json(self) -> dict:
        """Return the person as JSON-ready data (no secrets)."""
        return {"name": self.name, "role": self.role, "recipient": self.recipient,
                "cameras": list(self.cameras), "created": self.created}


def check_person_name(name: str) -> None:
    """Refuse a name that is not a short lower-case word, or the household's own account."""
    if not PERSON_NAME.match(name):
        raise UsageError(f"name {name!r} is not valid: use 1-32 of a-z, 0-9, '-' and '_', "
                         "starting with a letter or digit")
    if name == HOUSEHOLD:
        raise UsageError(f"{HOUSEHOLD!r} is the household's own account; choose another name")


def identity_path(data: DataDir, name: str) -> Path:
    """Return where a person's passphrase-sealed identity lives."""
    return data.root / "keys" / "people" / f"{name}.age"


class People:
    """The household's people and their camera shares, kept in the hub's SQLite database."""

    def __init__(self, data: DataDir, db: sqlite_utils.Database) -> None:
        self.data = data
        self.db = db

    def list(self) -> list[Person]:
        """Return everyone but the household account, by name."""
        shares: dict[str, list[str]] = {}
        for row in self.db.execute("select person, camera from shares order by camera"):
            shares.setdefault(row[0], []).append(row[1])
        return [
            Person(row["name"], row["role"], row["recipient"], tuple(shares.get(row["name"], ())),
                   row["created"])
            for row in self.db["people"].rows_where(order_by="name")
        ]

    def get(self, name: str) -> Person | None:
        """Return one person, or None."""
        return next((p for p in self.list() if p.name == name), None)

    def add(self, name: str, role: str, passphrase: str) -> Person:
        """Create a person with a new identity sealed with their passphrase (slow: age scrypt)."""
        check_person_name(name)
        if role not in ROLES:
            raise UsageError(f"role must be one of {', '.join(ROLES)}")
        check_new_passphrase(passphrase)
        if self.get(name) is not None:
            raise UsageError(f"{name!r} already exists")
        identity = pyrage.x25519.Identity.generate()
        recipient = str(identity.to_public())
        work_factor = load_config(self.data.root).vault.passphrase_work_factor
        sealed = seal(f"{identity}\n".encode(), passphrase, work_factor)
        path = identity_path(self.data, name)
        write_private(path, sealed)
        try:
            with self.db.write_lock:
                self.db["people"].insert({"name": name, "role": role, "recipient": recipient,
                                          "created": iso(utcnow())})
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Person(name, role, recipient, (), iso(utcnow()))

    def change_passphrase(self, name: str, identity: pyrage.x25519.Identity, new: str) -> None:
        """Seal a person's (unlocked) identity with a new passphrase; the old one opens nothing."""
        check_new_passphrase(new)
        person = self.get(name)
        if person is None or str(identity.to_public()) != person.recipient:
            raise UsageError(f"that key is not {name}'s: nothing was changed")
        work_factor = load_config(self.data.root).vault.passphrase_work_factor
        write_private(identity_path(self.data, name), seal(f"{identity}\n".encode(), new,
                                                           work_factor))

    def remove(self, name: str) -> None:
        """Remove a person: no new footage is sealed to them and they can no longer sign in."""
        if self.get(name) is None:
            raise UsageError(f"no person named {name!r}")
        with self.db.write_lock, self.db.conn:
            self.db.execute("delete from shares where person = ?", [name])
            # Their browsers too: a person added later under the same name must not inherit
            # them and be notified on someone else's phone.
            self.db.execute("delete from push_subscriptions where person = ?", [name])
            self.db.execute("delete from people where name = ?", [name])
        identity_path(self.data, name).unlink(missing_ok=True)

    def share(self, name: str, camera: str) -> None:
        """Share a camera with a person: its segments are sealed to them from now on."""
        if self.get(name) is None:
            raise UsageError(f"no person named {name!r}")
        with self.db.write_lock:
            self.db["shares"].upsert({"person": name, "camera": camera, "since": iso(utcnow())},
                                     pk=("person", "camera"))

    def unshare(self, name: str, camera: str) -> None:
        """Stop sharing a camera with a person from now on."""
        with self.db.write_lock:
            self.db.execute("delete from shares where person = ? and camera = ?", [name, camera])

    def recipients_for(self, camera: str) -> list[pyrage.x25519.Recipient]:
        """Return the people's recipients a new segment of this camera is sealed to."""
        rows = self.db.execute(
            "select recipient from people where role = ? or name in "
            "(select person from shares where camera = ?) order by name", [OWNER, camera],
        ).fetchall()
        return [pyrage.x25519.Recipient.from_str(row[0]) for row in rows]

    def unlock(self, name: str, passphrase: str) -> pyrage.x25519.Identity:
        """Open a person's identity with their passphrase; raise PassphraseError if wrong."""
        path = identity_path(self.data, name)
        try:
            sealed = path.read_bytes()
        except FileNotFoundError:
            spend_open_work(passphrase, load_config(self.data.root).vault.passphrase_work_factor)
            raise PassphraseError("wrong name or passphrase") from None
        try:
            plain = open_sealed(sealed, passphrase)
        except SealError:
            raise PassphraseError("wrong name or passphrase") from None
        return pyrage.x25519.Identity.from_str(plain.decode().strip())
