"""The hub's HTTP service (aiohttp): /healthz and the owner's web UI, over HTTPS by default."""

from __future__ import annotations

import logging
import ssl

from aiohttp import web

from hub.web import pages, ui

log = logging.getLogger(__name__)


def make_app(hub) -> web.Application:
    """Build the aiohttp application for a hub."""
    app = web.Application(client_max_size=1 << 20)
    app["hub"] = hub

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "hub": hub.config.hub.name})

    app.router.add_get("/healthz", healthz)
    ui.setup(app, hub)
    pages.setup(app)
    for routes in hub.pm.hook.porchlight_web_routes(hub=hub):
        app.router.add_routes(routes or [])
    return app


class WebServer:
    """Serve the app on host:port while the hub runs."""

    def __init__(self, app: web.Application, host: str, port: int,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.scheme = "https" if ssl_context is not None else "http"
        self.runner = web.AppRunner(app, handle_signals=False)

    async def __aenter__(self) -> WebServer:
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        # Port 0 picks a free port; report the real one.
        sockets = site._server.sockets if site._server else []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("web: listening on %s://%s:%d", self.scheme, self.host, self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()
