"""Notifiers: plugins that hear the hub's events. May import ``hub``; never ``hub.cli`` or ``hub.web``."""
