"""The running hub: its config, database, vault and plugins, and the services of `porchlight run`."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack
from functools import cached_property
from pathlib import Path

import pluggy

from hub.cameras.service import CameraService
from hub.config import Config, load_config
from hub.datadir import DataDir
from hub.db import connect
from hub.household import vault_recipients
from hub.neighbourhood.service import NeighbourhoodService
from hub.plugins import build_plugin_manager
from hub.timeutil import utcnow
from hub.vault.maintenance import VaultMaintenance
from hub.vault.retention import RetentionPolicy
from hub.vault.store import Vault
from hub.web.server import WebServer, make_app

log = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT_S = 5.0


class Hub:
    """One household hub, opened from its data dir."""

    def __init__(self, root: Path, *, clock=utcnow) -> None:
        self.data = DataDir(Path(root)).require()
        self.config: Config = load_config(self.data.root)
        self.clock = clock
        self.db = connect(self.data.database)
        self.vault = Vault(self.data, self.db, vault_recipients(self.data, self.config))

    @cached_property
    def pm(self) -> pluggy.PluginManager:
        """Return the plugin manager, built on first use (never at import time)."""
        return build_plugin_manager()

    def emit(self, event: dict) -> None:
        """Send an event to every plugin that listens."""
        self.pm.hook.porchlight_event(hub=self, event=event)

    def close(self) -> None:
        """Close the database."""
        self.db.conn.close()

    async def serve(self, host: str, port: int, stop: asyncio.Event, ready=None) -> None:
        """Run the hub's services until `stop` is set, then stop them in reverse order."""
        async with AsyncExitStack() as stack:
            maintenance = VaultMaintenance(
                self.vault, RetentionPolicy.from_config(self.config.retention),
                self.config.retention.interval_minutes * 60.0, self.clock,
            )
            await stack.enter_async_context(maintenance)
            await stack.enter_async_context(CameraService(self))
            self.neighbourhood = await stack.enter_async_context(NeighbourhoodService(self))
            web = await stack.enter_async_context(WebServer(make_app(self), host, port))
            self.pm.hook.porchlight_startup(hub=self)
            log.info("hub %s running", self.config.hub.name)
            if ready is not None:
                ready(web.port)
            await stop.wait()
            log.info("hub %s stopping", self.config.hub.name)


def run_hub(root: Path, listen: str | None) -> None:
    """Run `porchlight run` until SIGINT or SIGTERM; stop within the shutdown timeout."""
    hub = Hub(root)
    host, port = _split_listen(listen or hub.config.web.listen)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        serving = asyncio.create_task(
            hub.serve(host, port, stop, ready=lambda p: print(
                f"porchlight: hub {hub.config.hub.name!r} listening on http://{host}:{p}",
                flush=True)),
            name="hub-serve",
        )
        await asyncio.wait([serving, asyncio.create_task(stop.wait(), name="stop-wait")],
                           return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            serving.result()
            return
        try:
            await asyncio.wait_for(serving, SHUTDOWN_TIMEOUT_S)
        except TimeoutError:
            log.error("services did not stop within %.0f s; exiting anyway", SHUTDOWN_TIMEOUT_S)

    try:
        asyncio.run(main())
    finally:
        hub.close()


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)
