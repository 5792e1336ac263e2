"""The UI's pages, one module per group (home, cameras, ...); each adds its routes with setup(app).
May import the web shell (hub.web.ui) and every hub room below web; never hub.cli.
"""

from __future__ import annotations

from aiohttp import web

from hub.web.pages import (
    account,
    backup,
    camera_settings,
    cameras,
    fork,
    home,
    live,
    notifications,
    push,
    recordings,
    settings,
    witness,
)
from hub.web.pages import neighbourhood as neighbourhood_page
from hub.web.pages import requests as requests_page


def setup(app: web.Application) -> None:
    """Add every page's routes."""
    for page in (home, cameras, live, recordings, settings, camera_settings, requests_page,
                 neighbourhood_page, push, notifications, backup, witness, fork, account):
        page.setup(app)
