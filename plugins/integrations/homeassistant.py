"""Home Assistant MQTT discovery: the topics and payloads of one hub's entities (pure, no I/O).

Follows Home Assistant's MQTT discovery: each entity's config is a retained JSON message on
``<discovery_prefix>/<component>/<node_id>/<object_id>/config`` (an empty one removes it), with the
component's required topic (`state_topic`, a camera's `topic`, a switch's `command_topic`), a
`unique_id`, the hub as its `device`, and the hub's availability topic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from hub.cameras.sources import CameraState

MANUFACTURER = "Porchlight"
MODEL = "Porchlight hub"
ON, OFF = "ON", "OFF"
ONLINE, OFFLINE = "online", "offline"
# What Home Assistant may turn on and off per camera, when the owner allows switches.
SWITCHES = ("recording", "analysis")
SWITCH_NAMES = {"recording": "recording", "analysis": "motion analysis"}
CAMERA_STATES = tuple(state.value for state in CameraState)
# Longest command payload read; "ON" and "OFF" are all there is.
MAX_COMMAND_BYTES = 16


def node_id_for(hub_kid: str) -> str:
    """Return the hub's MQTT node id: stable, topic-safe, and not the key id neighbours know."""
    digest = hashlib.sha256(b"porchlight mqtt node\0" + hub_kid.encode()).hexdigest()
    return f"porchlight_{digest[:12]}"


@dataclass(frozen=True)
class Topics:
    """Where one hub publishes its states and Home Assistant finds its entities."""

    discovery_prefix: str
    topic_prefix: str
    node_id: str

    @property
    def base(self) -> str:
        return f"{self.topic_prefix}/{self.node_id}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def pending_requests(self) -> str:
        return f"{self.base}/requests/pending"

    @property
    def commands(self) -> str:
        """Return the filter that matches every switch's command topic."""
        return f"{self.base}/camera/+/+/set"

    @property
    def ha_status(self) -> str:
        """Return Home Assistant's birth topic: entities are published again when it says online."""
        return f"{self.discovery_prefix}/status"

    def camera(self, camera: str, what: str) -> str:
        """Return a camera's state topic: motion, state, snapshot, recording or analysis."""
        return f"{self.base}/camera/{camera}/{what}"

    def command(self, camera: str, switch: str) -> str:
        """Return the topic Home Assistant sends a switch's ON or OFF to."""
        return f"{self.camera(camera, switch)}/set"

    def config(self, component: str, object_id: str) -> str:
        """Return an entity's discovery topic."""
        return f"{self.discovery_prefix}/{component}/{self.node_id}/{object_id}/config"

    def parse_command(self, topic: str) -> tuple[str, str] | None:
        """Return (camera, switch) of a command topic, or None if it is not one."""
        prefix = f"{self.base}/camera/"
        if not topic.startswith(prefix) or not topic.endswith("/set"):
            return None
        parts = topic[len(prefix):-len("/set")].split("/")
        if len(parts) != 2 or parts[1] not in SWITCHES or not parts[0]:
            return None
        return parts[0], parts[1]


def parse_switch_payload(payload: bytes) -> bool | None:
    """Return True for ON, False for OFF, None for anything else."""
    if len(payload) > MAX_COMMAND_BYTES:
        return None
    return {ON.encode(): True, OFF.encode(): False}.get(payload.strip())


def device(node_id: str, hub_name: str, version: str) -> dict:
    """Return the device block every entity of this hub shares: one Home Assistant device per hub."""
    return {"identifiers": [node_id], "name": hub_name, "manufacturer": MANUFACTURER,
            "model": MODEL, "sw_version": version}


def _entity(topics: Topics, hub_name: str, version: str, object_id: str, name: str) -> dict:
    return {
        "name": name,
        "unique_id": f"{topics.node_id}_{object_id}",
        "availability": [{"topic": topics.availability, "payload_available": ONLINE,
                          "payload_not_available": OFFLINE}],
        "device": device(topics.node_id, hub_name, version),
        "origin": {"name": "Porchlight", "sw_version": version},
    }


def camera_entities(topics: Topics, hub_name: str, version: str, camera: str,
                    switches: bool) -> dict[str, dict | None]:
    """Return each of a camera's discovery topics with its config; None removes the entity."""
    def entity(object_id: str, name: str, **fields) -> dict:
        return _entity(topics, hub_name, version, object_id, name) | fields

    entities: dict[str, dict | None] = {
        topics.config("binary_sensor", f"{camera}_motion"): entity(
            f"{camera}_motion", f"{camera} motion", state_topic=topics.camera(camera, "motion"),
            device_class="motion", payload_on=ON, payload_off=OFF),
        topics.config("sensor", f"{camera}_state"): entity(
            f"{camera}_state", f"{camera} state", state_topic=topics.camera(camera, "state"),
            device_class="enum", options=list(CAMERA_STATES), icon="mdi:cctv"),
        # The latest motion snapshot, as JPEG bytes (no encoding) on `topic`.
        topics.config("camera", f"{camera}_snapshot"): entity(
            f"{camera}_snapshot", f"{camera} snapshot", topic=topics.camera(camera, "snapshot")),
    }
    for switch in SWITCHES:
        entities[topics.config("switch", f"{camera}_{switch}")] = entity(
            f"{camera}_{switch}", f"{camera} {SWITCH_NAMES[switch]}",
            command_topic=topics.command(camera, switch),
            state_topic=topics.camera(camera, switch), payload_on=ON, payload_off=OFF,
            state_on=ON, state_off=OFF, entity_category="config",
        ) if switches else None
    return entities


def hub_entities(topics: Topics, hub_name: str, version: str) -> dict[str, dict]:
    """Return the hub's own entities: the number of pending agency requests."""
    return {topics.config("sensor", "pending_requests"): _entity(
        topics, hub_name, version, "pending_requests", "pending agency requests") | {
        "state_topic": topics.pending_requests, "state_class": "measurement",
        "icon": "mdi:shield-alert"}}


def removed_camera(topics: Topics, camera: str) -> list[str]:
    """Return the discovery topics of a camera that is gone (each cleared with an empty message)."""
    return list(camera_entities(topics, "", "", camera, switches=False))
