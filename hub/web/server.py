"""The hub's HTTP service (aiohttp): health now; the owner's web UI grows here."""

from __future__ import annotations

import logging

from aiohttp import web

log = logging.getLogger(__name__)


def make_app(hub) -> web.Application:
    """Build the aiohttp application for a hub."""
    app = web.Application(client_max_size=1 << 20)
    app["hub"] = hub

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "hub": hub.config.hub.name})

    app.router.add_get("/healthz", healthz)
    for routes in hub.pm.hook.porchlight_web_routes(hub=hub):
        app.router.add_routes(routes or [])
    return app


class WebServer:
    """Serve the app on host:port while the hub runs."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.runner = web.AppRunner(app, handle_signals=False)

    async def __aenter__(self) -> WebServer:
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        # Port 0 picks a free port; report the real one.
        sockets = site._server.sockets if site._server else []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("web: listening on http://%s:%d", self.host, self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()
