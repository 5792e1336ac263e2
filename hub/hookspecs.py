"""The hooks plugins implement. Built-in plugins use them exactly as third-party ones do."""

from __future__ import annotations

import pluggy

PROJECT = "porchlight"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def porchlight_camera_types():
    """Return a dict of camera source classes keyed by their config `type`."""


@hookspec
def porchlight_detector_types():
    """Return a dict of detector classes keyed by their config `type`."""


@hookspec
def porchlight_notifier_types():
    """Return a dict of notifier classes keyed by their config `type`."""


@hookspec
def porchlight_startup(hub):
    """Run once when `porchlight run` has started its services."""


@hookspec
def porchlight_services(hub):
    """Return async context managers the hub runs beside its own services until it stops."""


@hookspec
def porchlight_event(hub, event):
    """Receive one event from the hub's event bus (motion, request, alert, repair)."""


@hookspec
def porchlight_web_routes(hub):
    """Return a list of aiohttp route definitions to add to the hub's web app."""


@hookspec(firstresult=True)
def porchlight_redact_faces(data, media_type):
    """Return (redacted bytes, faces blurred) for an image or clip to be shared, or None."""
