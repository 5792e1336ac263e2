"""Signed-in sessions and the login guard: who is signed in, with which unlocked key, for how long.

An unlocked age identity lives only in the server's memory, inside its session. It is dropped at
logout, after the idle timeout, and when the hub stops. (Python cannot scrub the bytes of an
object from memory; dropping the only reference is what it can do, and the identity is never
written anywhere.)
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Login backoff: after the n-th failure in a row, wait 2**(n-1) s, at most 15 minutes.
BACKOFF_MAX_S = 15 * 60.0
# Failures are forgotten after a quiet day.
FAILURE_MEMORY_S = 24 * 3600.0
MAX_SESSIONS = 64


@dataclass
class Session:
    """One signed-in person in one browser."""

    token: str
    name: str
    role: str
    cameras: frozenset[str] | None  # None: every camera (an owner)
    identity: Any = field(repr=False)
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    last_seen: float = 0.0
    # Camera pictures this session's key opened, by camera: (segment id, JPEG).
    pictures: dict = field(default_factory=dict, repr=False)

    def sees(self, camera: str) -> bool:
        """Say whether this session may see the camera."""
        return self.cameras is None or camera in self.cameras

    @property
    def is_owner(self) -> bool:
        """Say whether this session may do everything."""
        return self.role == "owner"

    def wipe(self) -> None:
        """Drop the unlocked identity and what it opened."""
        self.identity = None
        self.pictures.clear()


class SessionStore:
    """Sessions by their cookie token, ended after idle_s without a request."""

    def __init__(self, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.clock = clock
        self._sessions: dict[str, Session] = {}

    def create(self, name: str, role: str, cameras: frozenset[str] | None, identity: Any) -> Session:
        """Start a session for a person whose identity was just unlocked."""
        self.expire()
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
            self.end(oldest.token)
        session = Session(secrets.token_urlsafe(32), name, role, cameras, identity,
                          last_seen=self.clock())
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """Return the live session for a cookie token and mark it used; None if absent or idle."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle_s:
            self.end(token)
            return None
        session.last_seen = now
        return session

    def end(self, token: str) -> None:
        """End a session and wipe its key."""
        session = self._sessions.pop(token, None)
        if session is not None:
            session.wipe()

    def end_person(self, name: str) -> None:
        """End every session of a person (removed, or their access changed)."""
        for token in [t for t, s in self._sessions.items() if s.name == name]:
            self.end(token)

    def end_person_elsewhere(self, name: str, keep: str) -> None:
        """End a person's sessions but the one whose token is keep (their passphrase changed)."""
        for token in [t for t, s in self._sessions.items() if s.name == name and t != keep]:
            self.end(token)

    def expire(self) -> None:
        """End every idle session."""
        now = self.clock()
        for token in [t for t, s in self._sessions.items() if now - s.last_seen > self.idle_s]:
            self.end(token)

    def end_all(self) -> None:
        """End every session (the hub is stopping)."""
        for token in list(self._sessions):
            self.end(token)

    def __len__(self) -> int:
        return len(self._sessions)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class LoginGuard:
    """Lock out an account and a client address with a growing backoff after failed logins.

    Every login attempt costs an scrypt unlock (about a second of CPU), so attempts are also
    taken one at a time: nobody can keep the hub's CPU busy by posting logins.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: dict[str, _Failures] = {}
        self.unlocking = asyncio.Lock()

    def wait_s(self, account: str, address: str) -> float:
        """Return how many seconds the account or address must still wait (0: may try now)."""
        now = self.clock()
        wait = 0.0
        for key in (f"account:{account}", f"address:{address}"):
            failures = self._failures.get(key)
            if failures is None or failures.count == 0:
                continue
            if now - failures.last > FAILURE_MEMORY_S:
                del self._failures[key]
                continue
            backoff = min(BACKOFF_MAX_S, 2.0 ** (failures.count - 1))
            wait = max(wait, failures.last + backoff - now)
        return wait

    def failed(self, account: str, address: str) -> None:
        """Record a failed attempt for both the account and the address."""
        now = self.clock()
        for key in (f"account:{account}", f"address:{address}"):
            failures = self._failures.setdefault(key, _Failures())
            failures.count += 1
            failures.last = now

    def succeeded(self, account: str, address: str) -> None:
        """Forget the account's and address's failures."""
        self._failures.pop(f"account:{account}", None)
        self._failures.pop(f"address:{address}", None)
