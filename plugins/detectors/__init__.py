"""Detectors: motion analysis and face redaction. May import ``hub``; never ``hub.cli`` or ``hub.web``."""
