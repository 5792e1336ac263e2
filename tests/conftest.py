"""Shared fixtures: a hub made once per session and copied per test, generated clips."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

PASSPHRASE = "correct horse battery staple"
# The suite's hubs seal their keys at age scrypt 2^12 instead of the default 2^18: every sign-in
# and unlock costs an scrypt, about 1 s of CPU at 2^18, and the suite makes hundreds of them.
# tests/hub/test_passphrase_seal.py and tests/hub/test_init.py check the default.
WORK_FACTOR = 12


@pytest.fixture(scope="session")
def hub_template(tmp_path_factory) -> Path:
    """Create one hub per session; tests copy it."""
    from hub.init import create_hub

    root = tmp_path_factory.mktemp("template") / "hub"
    create_hub(root, PASSPHRASE, name="test-hub", location=(51.5007, -0.1246),
               work_factor=WORK_FACTOR)
    return root


@pytest.fixture
def hub_dir(tmp_path, hub_template) -> Path:
    """Return a fresh copy of the template hub."""
    root = tmp_path / "hub"
    shutil.copytree(hub_template, root)
    return root


@pytest.fixture(scope="session")
def passphrase() -> str:
    """Return the test hubs' household passphrase."""
    return PASSPHRASE


@pytest.fixture
def passfile(tmp_path) -> Path:
    """Return a file holding the household passphrase."""
    path = tmp_path / "passphrase.txt"
    path.write_text(PASSPHRASE + "\n")
    return path


@pytest.fixture(scope="session")
def household_identity(hub_template):
    """Return the template hub's household identity, unlocked once per session."""
    from hub.datadir import DataDir
    from hub.household import unlock_household_identity

    return unlock_household_identity(DataDir(hub_template), PASSPHRASE)


@pytest.fixture(scope="session")
def clip25(tmp_path_factory) -> Path:
    """Return a 25 s H.264 MP4 with a keyframe every second."""
    from plugins.cameras.scene import write_clip

    path = tmp_path_factory.mktemp("media") / "clip25.mp4"
    write_clip(path, seconds=25.0, fps=15)
    return path
