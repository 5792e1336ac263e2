"""The running hub: its config, database, vault and plugins, and the services of `porchlight run`."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import ssl
import sys
from contextlib import AsyncExitStack
from functools import cached_property
from pathlib import Path

import pluggy

from hub.cameras.service import CameraService
from hub.config import Config, load_config
from hub.datadir import DataDir
from hub.db import connect
from hub.errors import UsageError
from hub.household import vault_recipients
from hub.neighbourhood.service import NeighbourhoodService
from hub.notify.dispatch import NotifyService
from hub.people import People
from hub.plugins import build_plugin_manager
from hub.ports import is_address_in_use, listen_error, require_free_port, split_listen
from hub.timeutil import utcnow
from hub.vault.disk import DiskThresholds, DiskWatch
from hub.vault.maintenance import VaultMaintenance
from hub.vault.retention import RetentionPolicy
from hub.vault.store import Vault
from hub.web.server import WebServer, make_app
from hub.web.tls import fingerprint, make_self_signed, server_context, terminal_qr

log = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT_S = 5.0


class Hub:
    """One household hub, opened from its data dir."""

    def __init__(self, root: Path, *, clock=utcnow) -> None:
        self.data = DataDir(Path(root)).require()
        self.config: Config = load_config(self.data.root)
        self.clock = clock
        self.db = connect(self.data.database)
        self.people = People(self.data, self.db)
        # In-process listeners (the web UI's live updates); called from any thread.
        self.listeners: list = []
        self.vault = Vault(self.data, self.db, vault_recipients(self.data, self.config),
                           camera_recipients=self.people.recipients_for)

    @cached_property
    def pm(self) -> pluggy.PluginManager:
        """Return the plugin manager, built on first use (never at import time)."""
        return build_plugin_manager()

    def emit(self, event: dict) -> None:
        """Send an event to every plugin that listens, and to the web UI's live pages."""
        self.pm.hook.porchlight_event(hub=self, event=event)
        for listener in list(self.listeners):
            listener(event)

    def close(self) -> None:
        """Close the database."""
        self.db.conn.close()

    def web_tls(self, host: str, http: bool) -> ssl.SSLContext | None:
        """Return the web UI's TLS context; None only for plain HTTP asked for on loopback."""
        if http:
            if not _is_loopback(host):
                raise UsageError(f"plain HTTP is only allowed on 127.0.0.1, not {host}: the web UI "
                                 "carries passphrases (drop --http to serve HTTPS)")
            return None
        web_config = self.config.web
        if web_config.cert_file is not None:
            cert = self.data.root / web_config.cert_file
            key = self.data.root / web_config.key_file
        else:
            cert, key = self.data.web_cert, self.data.web_key
            if not cert.exists() or not key.exists():
                # A hub made before the web UI had a certificate: make its own now.
                make_self_signed(cert, key, self.config.hub.name)
        self.web_fingerprint = fingerprint(cert.read_bytes())
        return server_context(cert, key)

    async def serve(self, host: str, port: int, stop: asyncio.Event, ready=None,
                    http: bool = False) -> None:
        """Run the hub's services until `stop` is set, then stop them in reverse order."""
        tls = self.web_tls(host, http)
        async with AsyncExitStack() as stack:
            # First in, last out: it hears every other service's events, to their last.
            self.notifications = await stack.enter_async_context(NotifyService(self))
            notify = self.config.notify
            disk = DiskWatch(DiskThresholds(notify.disk_free_percent, notify.disk_quota_percent,
                                            self.config.retention.max_bytes), self.emit)
            maintenance = VaultMaintenance(
                self.vault, RetentionPolicy.from_config(self.config.retention),
                self.config.retention.interval_minutes * 60.0, self.clock, disk_watch=disk,
            )
            # Kept, so that a retention change in the web UI applies from the next pass.
            self.maintenance = await stack.enter_async_context(maintenance)
            await stack.enter_async_context(CameraService(self))
            self.neighbourhood = await stack.enter_async_context(NeighbourhoodService(self))
            web = await stack.enter_async_context(WebServer(make_app(self), host, port, tls))
            # Plugins' long-lived services (Home Assistant over MQTT): started last, stopped first.
            for services in self.pm.hook.porchlight_services(hub=self):
                for service in services or ():
                    await stack.enter_async_context(service)
            self.pm.hook.porchlight_startup(hub=self)
            log.info("hub %s running", self.config.hub.name)
            if ready is not None:
                ready(web.scheme, web.port)
            await stop.wait()
            log.info("hub %s stopping", self.config.hub.name)


def run_hub(root: Path, listen: str | None, http: bool = False) -> None:
    """Run `porchlight run` until SIGINT or SIGTERM; stop within the shutdown timeout."""
    hub = Hub(root)
    host, port = split_listen(listen or hub.config.web.listen)
    hint = "is another hub running? (--listen to choose another)"
    try:
        # Before any camera starts: a hub that cannot serve stops with one line, not a log.
        require_free_port(host, port, hint)
    except BaseException:
        hub.close()
        raise

    def ready(scheme: str, port: int) -> None:
        url = f"{scheme}://{host}:{port}"
        print(f"porchlight: hub {hub.config.hub.name!r} listening on {url}", flush=True)
        if scheme == "https":
            print(f"porchlight: web UI certificate SHA-256 {hub.web_fingerprint}", flush=True)
            if sys.stdout.isatty():
                print(terminal_qr(url), flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        serving = asyncio.create_task(
            hub.serve(host, port, stop, ready=ready, http=http),
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
    except OSError as err:
        # Taken between the check and the bind.
        if is_address_in_use(err):
            raise listen_error(err, host, port, hint) from None
        raise
    finally:
        hub.close()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
