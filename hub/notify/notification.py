"""What a notification target receives, and how a target says it failed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from hub.errors import PorchlightError

# Event keys never passed on to a target: picture bytes travel in `snapshot` only when allowed,
# and a hub's exact location never leaves it.
PRIVATE_EVENT_KEYS = frozenset({"snapshot", "lat", "lon", "location", "token"})


class NotifyError(PorchlightError):
    """A notification target could not take a notification (it is tried again with backoff)."""


@dataclass(frozen=True)
class Notification:
    """One message to a person's target: a title, a line of text and a link to the web UI."""

    trigger: str
    title: str
    body: str
    # A path of the web UI ("/requests/<id>"); `url` is it made absolute with [notify]
    # public_url when the owner set one, else the same path.
    link: str
    camera: str | None = None
    # JPEG bytes, set only for a target allowed to get this camera's pictures.
    snapshot: bytes | None = field(default=None, repr=False)
    # The hub event it came from, without pictures, tokens or location.
    event: dict = field(default_factory=dict, compare=False)
    url: str = ""
    # The same for every attempt at every target: a receiver can drop a repeated delivery.
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if not self.url:
            object.__setattr__(self, "url", self.link)


def public_event(event: dict) -> dict:
    """Return the event without the keys that must not leave the hub."""
    return {k: v for k, v in event.items() if k not in PRIVATE_EVENT_KEYS}


def absolute(link: str, public_url: str | None) -> str:
    """Return the link made absolute under the hub's public URL, if one is configured."""
    if not public_url:
        return link
    return public_url.rstrip("/") + link
