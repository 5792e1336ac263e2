"""The owner's retention settings: the `[retention]` section of config.toml, edited in place.

The owner's comments and the rest of the file are kept (tomlkit); the whole new file is
validated before it replaces the old one, so a bad value changes nothing.
"""

from __future__ import annotations

import tomlkit

from hub.config import ConfigEdit, RetentionSection
from hub.datadir import DataDir

RETENTION_KEYS = ("max_age_days", "max_bytes", "min_free_percent")


def set_retention(data: DataDir, changes: dict[str, float | int | str | None]) -> RetentionSection:
    """Set retention keys (None: back to the default); return the section the hub now reads."""
    with ConfigEdit(data.root) as edit:
        document = edit.document
        if "retention" not in document:
            document["retention"] = tomlkit.table()
        section = document["retention"]
        for key, value in changes.items():
            if key not in RETENTION_KEYS:
                raise ValueError(f"retention has no setting {key!r}")
            if value is None:
                # TOML has no null: leaving the key out is how a setting goes back to its default.
                section.pop(key, None)
            else:
                section[key] = value
        config = edit.save()  # raises ConfigError naming the wrong key; nothing is written
    return config.retention
