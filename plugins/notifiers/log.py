"""Built-in notifier: write each hub event to the log (no secrets, no footage)."""

from __future__ import annotations

import logging

from hub.hookspecs import hookimpl

log = logging.getLogger("porchlight.events")


@hookimpl
def porchlight_event(hub, event):
    """Log the event's kind and summary."""
    log.info("event %s: %s", event.get("kind", "?"), event.get("summary", ""))
