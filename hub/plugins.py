"""Build the plugin manager: built-ins from plugins/, third parties from the `porchlight` group."""

from __future__ import annotations

import importlib

import pluggy

from hub import hookspecs
from hub.errors import ConfigError

# The built-ins are loaded by module name through the same hooks as third-party plugins.
DEFAULT_PLUGINS = (
    "plugins.notifiers.log",
    "plugins.notifiers.apprise",
    "plugins.notifiers.webhook",
    "plugins.notifiers.webpush",
    "plugins.cameras.synthetic",
    "plugins.cameras.rtsp",
    "plugins.cameras.onvif",
    "plugins.detectors.motion_analyzer",
    "plugins.detectors.redact",
    "plugins.integrations.mqtt",
)


def build_plugin_manager(*, load_entry_points: bool = True) -> pluggy.PluginManager:
    """Return a new plugin manager with the built-in and installed plugins registered."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if load_entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    return pm


def collect_types(results: list[dict], what: str) -> dict:
    """Merge the per-plugin dicts of a *_types hook; a `type` claimed twice is a start-up error."""
    merged: dict = {}
    for result in results:
        for key, value in (result or {}).items():
            if key in merged and merged[key] is not value:
                raise ConfigError(f"two plugins provide the {what} type {key!r}; uninstall one")
            merged[key] = value
    return merged
