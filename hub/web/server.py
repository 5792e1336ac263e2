"""The hub's HTTP service (aiohttp): /healthz and the owner's web UI, over HTTPS by default."""

from __future__ import annotations

import logging
import ssl

from aiohttp import web

from federation.serving import HardenedServer, ServerLimits
from hub.cameras.service import camera_health
from hub.web import pages, ui

log = logging.getLogger(__name__)
# An owner's browser opens about six connections; a few tabs and live pages stay well under
# 32. The timeout is also the header-read deadline (federation/serving.py). The hub's
# config.toml [web] sets both.
WEB_LIMITS = ServerLimits(idle_timeout_s=20.0, max_per_address=32)


def make_app(hub) -> web.Application:
    """Build the aiohttp application for a hub."""
    app = web.Application(client_max_size=1 << 20)
    app["hub"] = hub

    async def healthz(request: web.Request) -> web.Response:
        health = camera_health(hub)
        return web.json_response({"status": health["status"], "hub": hub.config.hub.name,
                                  "down": health["down"], "cameras": health["cameras"]})

    app.router.add_get("/healthz", healthz)
    ui.setup(app, hub)
    pages.setup(app)
    for routes in hub.pm.hook.porchlight_web_routes(hub=hub):
        app.router.add_routes(routes or [])
    return app


class WebServer:
    """Serve the app on host:port while the hub runs, within the web server's limits."""

    def __init__(self, app: web.Application, host: str, port: int,
                 ssl_context: ssl.SSLContext | None = None, *,
                 limits: ServerLimits | None = None) -> None:
        if limits is None and "hub" in app:
            web_config = app["hub"].config.web
            limits = ServerLimits(idle_timeout_s=web_config.idle_timeout_s,
                                  max_per_address=web_config.max_connections_per_address)
        self.app = app
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.scheme = "https" if ssl_context is not None else "http"
        self.server = HardenedServer(app, host, port, limits=limits or WEB_LIMITS,
                                     ssl_context=ssl_context)

    async def __aenter__(self) -> WebServer:
        await self.server.__aenter__()
        # Port 0 picks a free port; report the real one.
        self.port = self.server.port
        log.info("web: listening on %s://%s:%d", self.scheme, self.host, self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.server.__aexit__(*exc)
