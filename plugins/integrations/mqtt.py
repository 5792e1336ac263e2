"""Home Assistant over MQTT: the hub's cameras, motion, snapshots and pending requests as entities.

One long-lived connection to the owner's broker (aiomqtt), with a last will that marks the hub
offline if it dies. States are retained, so Home Assistant shows them as soon as it subscribes.
Events reach the bridge from any thread through the `porchlight_event` hook; the bridge reads
the rest (camera states, pending requests, the switches' states) from the hub's database and
config.toml every few seconds and publishes only what changed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import ssl
import weakref
from importlib.metadata import PackageNotFoundError, version

import aiomqtt

from hub.aio import cancel_and_wait
from hub.cameras.admin import set_camera_switches
from hub.cameras.service import camera_states
from hub.config import MqttSection, load_config
from hub.errors import ConfigError, PorchlightError
from hub.hookspecs import hookimpl
from hub.household import hub_key
from plugins.integrations.homeassistant import (
    OFF,
    OFFLINE,
    ON,
    ONLINE,
    SWITCHES,
    Topics,
    camera_entities,
    hub_entities,
    node_id_for,
    parse_switch_payload,
    removed_camera,
)

log = logging.getLogger(__name__)

POLL_S = 5.0  # camera states, pending requests and config.toml are read this often
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 60.0
STOP_TIMEOUT_S = 3.0
MAX_QUEUED = 1000  # messages waiting for the broker; beyond it, the oldest states are dropped
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024

# The running bridge of each hub, for the event hook (a hub runs at most one).
_RUNNING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _version() -> str:
    try:
        return version("porchlight")
    except PackageNotFoundError:
        return "unknown"


async def broker_on_lan(host: str, port: int) -> bool:
    """Tell whether every address the broker's name resolves to is on the LAN (or this machine)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    return bool(addresses) and all(is_lan_address(a) for a in addresses)


def is_lan_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Tell whether an address is private, loopback or link-local (never the internet)."""
    return address.is_private or address.is_loopback or address.is_link_local


class HomeAssistantBridge:
    """Publish the hub to Home Assistant over MQTT while the hub runs; reconnect with backoff."""

    def __init__(self, hub, section: MqttSection) -> None:
        self.hub = hub
        self.section = section
        self.topics = Topics(section.discovery_prefix, section.topic_prefix,
                             node_id_for(hub_key(hub.data).kid))
        self.version = _version()
        self.motion: dict[str, bool] = {}
        self.snapshots: dict[str, bytes] = {}
        self.queue: asyncio.Queue = asyncio.Queue(MAX_QUEUED)
        self.published: dict[str, bytes] = {}  # last state sent per topic, this session
        self.cameras: list[str] = []  # the cameras whose entities Home Assistant has
        self.send_snapshots = False
        self.stopping = asyncio.Event()
        self.refresh = asyncio.Event()
        self.sync_lock = asyncio.Lock()
        self.task: asyncio.Task | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._config_mtime: int | None = None
        self._switch_states: dict[str, dict[str, bool]] = {}

    async def __aenter__(self) -> HomeAssistantBridge:
        self.loop = asyncio.get_running_loop()
        _RUNNING[self.hub] = self
        self.task = asyncio.create_task(self._run(), name="mqtt-home-assistant")
        return self

    async def __aexit__(self, *exc) -> None:
        _RUNNING.pop(self.hub, None)
        self.stopping.set()
        try:
            # Time to say `offline` and disconnect cleanly; a dead broker is not waited for.
            await asyncio.wait_for(asyncio.shield(self.task), STOP_TIMEOUT_S)
        except TimeoutError:
            await cancel_and_wait(self.task)

    # -- events, from any thread ---------------------------------------------------------------

    def on_event(self, event: dict) -> None:
        """Take one hub event; safe from any thread."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._handle, event)

    def _handle(self, event: dict) -> None:
        kind, camera = event.get("kind"), event.get("camera")
        if kind == "motion-state" and camera:
            self.motion[camera] = bool(event.get("active"))
            self._offer(self.topics.camera(camera, "motion"), ON if self.motion[camera] else OFF)
        elif kind == "motion" and camera and isinstance(event.get("snapshot"), bytes):
            snapshot = event["snapshot"]
            if len(snapshot) <= MAX_SNAPSHOT_BYTES:
                self.snapshots[camera] = snapshot
                if self.send_snapshots:
                    self._offer(self.topics.camera(camera, "snapshot"), snapshot)
        elif kind in ("camera-state", "request"):
            self.refresh.set()

    def _offer(self, topic: str, payload: str | bytes) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        if self.queue.full():
            self.queue.get_nowait()  # the broker is far behind: the oldest state gives way
        self.queue.put_nowait((topic, data))

    # -- the connection --------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff, failing = BACKOFF_START_S, False
        where = f"{self.section.host}:{self.section.port}"
        while not self.stopping.is_set():
            try:
                # Read at each attempt: an owner who fixes the password file needs no restart.
                password = (self.section.password.resolve(self.hub.data.root)
                            if self.section.password is not None else None)
                async with aiomqtt.Client(
                    self.section.host, self.section.port, username=self.section.username,
                    password=password, identifier=self.topics.node_id, keepalive=30,
                    timeout=10, will=aiomqtt.Will(self.topics.availability, OFFLINE, qos=1,
                                                  retain=True),
                    tls_context=self._tls_context(),
                ) as client:
                    if failing:
                        log.info("mqtt: connected to %s again", where)
                    else:
                        log.info("mqtt: connected to %s", where)
                    backoff, failing = BACKOFF_START_S, False
                    await self._session(client)
            except (aiomqtt.MqttError, ConfigError) as err:
                if not failing:
                    # Once per failure streak; the message names no password.
                    log.warning("mqtt: broker %s: %s; retrying with backoff", where, err)
                    failing = True
            except Exception:  # a bug here must not stop the hub: log it, start afresh
                log.exception("mqtt: the Home Assistant bridge failed; starting it again")
                failing = True
            if self.stopping.is_set():
                return
            try:
                await asyncio.wait_for(self.stopping.wait(), backoff)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _tls_context(self) -> ssl.SSLContext | None:
        """Return the TLS context for a TLS broker ([mqtt] tls), read at each attempt."""
        if not self.section.tls:
            return None
        cafile = None
        if self.section.ca_file is not None:
            cafile = str(self.hub.data.root / self.section.ca_file)  # an absolute path stays
        try:
            return ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"[mqtt] ca_file {self.section.ca_file}: cannot be read as PEM "
                              f"certificates ({err})") from None

    async def _session(self, client: aiomqtt.Client) -> None:
        """Announce the hub, then publish until the hub stops or the connection drops."""
        self.send_snapshots = self.section.snapshots and await broker_on_lan(
            self.section.host, self.section.port)
        if self.section.snapshots and not self.send_snapshots:
            log.warning("mqtt: broker %s is not on the LAN: motion snapshots are not sent to it",
                        self.section.host)
        self.published.clear()
        while not self.queue.empty():
            self.queue.get_nowait()  # everything is published afresh below
        await client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        await client.subscribe(self.topics.ha_status, qos=1)
        if self.section.switches:
            await client.subscribe(self.topics.commands, qos=1)
        self.cameras = []
        self._config_mtime = None
        await self._announce(client)
        tasks = [asyncio.create_task(self._read(client), name="mqtt-read"),
                 asyncio.create_task(self._publish(client), name="mqtt-publish"),
                 asyncio.create_task(self._poll(client), name="mqtt-poll")]
        stop = asyncio.create_task(self.stopping.wait(), name="mqtt-stop-wait")
        try:
            done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop:
                    task.result()  # a dropped connection raises MqttError: reconnect
        finally:
            for task in [*tasks, stop]:
                await cancel_and_wait(task)
        if self.stopping.is_set():
            # Stopping cleanly: the will is only for a hub that dies, so say it here.
            await client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)

    async def _announce(self, client: aiomqtt.Client) -> None:
        """Publish every entity's discovery config and its current state."""
        await self._sync(client, force=True)
        for camera, snapshot in self.snapshots.items():
            if self.send_snapshots and camera in self.cameras:
                await client.publish(self.topics.camera(camera, "snapshot"), snapshot,
                                     qos=0, retain=True)

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if topic == self.topics.ha_status:
                if payload.strip() == ONLINE.encode():
                    # Home Assistant restarted: it may have lost what it knew.
                    await self._sync(client, force=True)
                continue
            await self._command(client, topic, payload)

    async def _command(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        if not self.section.switches:
            return  # not subscribed; never acted on even if a broker delivers one
        parsed = self.topics.parse_command(topic)
        value = parse_switch_payload(payload)
        if parsed is None or value is None or parsed[0] not in self.cameras:
            log.warning("mqtt: ignored a command on %s (expected ON or OFF for a camera's "
                        "recording or analysis)", topic[:200])
            return
        camera, switch = parsed
        try:
            await asyncio.to_thread(set_camera_switches, self.hub.data, camera, **{switch: value})
            log.info("mqtt: Home Assistant turned %s %s on camera %s", switch,
                     "on" if value else "off", camera)
        except (PorchlightError, OSError) as err:
            log.warning("mqtt: %s not turned %s on camera %s: %s", switch,
                        "on" if value else "off", camera, err)
        # The switch shows what config.toml says now, whether or not the command took.
        await self._sync(client, force=False, reread=True)

    async def _publish(self, client: aiomqtt.Client) -> None:
        while True:
            topic, data = await self.queue.get()
            await client.publish(topic, data, qos=0 if topic.endswith("/snapshot") else 1,
                                 retain=True)

    async def _poll(self, client: aiomqtt.Client) -> None:
        while True:
            try:
                await asyncio.wait_for(self.refresh.wait(), POLL_S)
            except TimeoutError:
                pass
            self.refresh.clear()
            await self._sync(client, force=False)

    # -- states ----------------------------------------------------------------------------------

    async def _sync(self, client: aiomqtt.Client, *, force: bool, reread: bool = False) -> None:
        """Publish the entities of cameras added or removed, and every state that changed."""
        async with self.sync_lock:
            await self._sync_locked(client, force=force, reread=reread)

    async def _sync_locked(self, client: aiomqtt.Client, *, force: bool, reread: bool) -> None:
        if reread:
            self._config_mtime = None
        cameras, switches, states, pending = await asyncio.to_thread(self._read_hub)
        for camera in [c for c in self.cameras if c not in cameras]:
            for topic in removed_camera(self.topics, camera):
                await client.publish(topic, b"", qos=1, retain=True)
            self.motion.pop(camera, None)
            self.snapshots.pop(camera, None)
        new = [c for c in cameras if force or c not in self.cameras]
        discovery: dict[str, dict | None] = {}
        if force:
            discovery |= hub_entities(self.topics, self.hub.config.hub.name, self.version)
        for camera in new:
            discovery |= camera_entities(self.topics, self.hub.config.hub.name, self.version,
                                         camera, self.section.switches)
        for topic, config in discovery.items():
            payload = b"" if config is None else json.dumps(config, sort_keys=True).encode()
            await client.publish(topic, payload, qos=1, retain=True)
        self.cameras = cameras
        wanted: dict[str, str] = {self.topics.pending_requests: str(pending)}
        for camera in cameras:
            wanted[self.topics.camera(camera, "state")] = states.get(camera, "starting")
            if camera in new:
                wanted[self.topics.camera(camera, "motion")] = \
                    ON if self.motion.get(camera) else OFF
            if self.section.switches:
                for switch in SWITCHES:
                    wanted[self.topics.camera(camera, switch)] = \
                        ON if switches[camera][switch] else OFF
        for topic, value in wanted.items():
            data = value.encode()
            if self.published.get(topic) != data:
                self.published[topic] = data
                await client.publish(topic, data, qos=1, retain=True)

    def _read_hub(self) -> tuple[list[str], dict[str, dict[str, bool]], dict[str, str], int]:
        """Read the cameras and their switches (config.toml), states and pending requests."""
        mtime = self.hub.data.config.stat().st_mtime_ns
        if mtime != self._config_mtime:
            try:
                config = load_config(self.hub.data.root)
                self._switch_states = {c.name: {"recording": c.recording, "analysis": c.analysis}
                                       for c in config.cameras}
                self._config_mtime = mtime
            except ConfigError as err:
                log.warning("mqtt: config.toml: %s; cameras left as they were", err)
        states = {name: row["state"] for name, row in camera_states(self.hub.db).items()}
        pending = self.hub.db.execute(
            "select count(*) from requests where status = 'pending'").fetchone()[0]
        return list(self._switch_states), dict(self._switch_states), states, pending


@hookimpl
def porchlight_services(hub):
    """Run the Home Assistant bridge when config.toml has an [mqtt] section."""
    section = hub.config.mqtt
    return [HomeAssistantBridge(hub, section)] if section is not None else []


@hookimpl
def porchlight_event(hub, event):
    """Hand the event to the hub's running bridge, if any."""
    bridge = _RUNNING.get(hub)
    if bridge is not None:
        bridge.on_event(event)
