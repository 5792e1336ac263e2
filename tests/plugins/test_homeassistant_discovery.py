"""Home Assistant discovery payloads, command parsing, the [mqtt] config and camera switches."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.cameras.admin import add_camera, set_camera_switches
from hub.config import parse_config
from hub.datadir import DataDir
from hub.errors import ConfigError, UsageError
from plugins.integrations.homeassistant import (
    SWITCHES,
    Topics,
    camera_entities,
    hub_entities,
    node_id_for,
    parse_switch_payload,
    removed_camera,
)
from plugins.integrations.mqtt import broker_on_lan, is_lan_address

TOPICS = Topics("homeassistant", "porchlight", node_id_for("some-kid"))
# What Home Assistant's MQTT schema requires of each component we publish.
REQUIRED = {"binary_sensor": {"state_topic"}, "sensor": {"state_topic"}, "camera": {"topic"},
            "switch": {"command_topic"}}


def _component(topic: str) -> str:
    return topic.split("/")[1]


def test_every_entity_has_what_home_assistant_requires():
    entities = camera_entities(TOPICS, "maple-12", "0.1.0", "porch", switches=True)
    entities |= hub_entities(TOPICS, "maple-12", "0.1.0")

    assert sorted(_component(t) for t in entities) == [
        "binary_sensor", "camera", "sensor", "sensor", "switch", "switch"]
    for topic, config in entities.items():
        assert topic.startswith(f"homeassistant/{_component(topic)}/{TOPICS.node_id}/")
        assert topic.endswith("/config")
        assert REQUIRED[_component(topic)] <= set(config), topic
        # Entities with a device need a unique_id; the device needs identifiers.
        assert config["unique_id"].startswith(TOPICS.node_id)
        assert config["device"] == {"identifiers": [TOPICS.node_id], "name": "maple-12",
                                    "manufacturer": "Porchlight", "model": "Porchlight hub",
                                    "sw_version": "0.1.0"}
        assert config["availability"] == [{"topic": TOPICS.availability,
                                           "payload_available": "online",
                                           "payload_not_available": "offline"}]
    assert len({c["unique_id"] for c in entities.values()}) == len(entities)
    motion = entities[TOPICS.config("binary_sensor", "porch_motion")]
    assert motion["device_class"] == "motion"
    state = entities[TOPICS.config("sensor", "porch_state")]
    assert state["options"] == ["starting", "online", "reconnecting", "auth failed",
                                "unreachable", "stopped"]


def test_without_switches_the_switch_entities_are_removed():
    entities = camera_entities(TOPICS, "maple-12", "0.1.0", "porch", switches=False)

    assert {t: c for t, c in entities.items() if c is None} == {
        TOPICS.config("switch", "porch_recording"): None,
        TOPICS.config("switch", "porch_analysis"): None}
    assert set(removed_camera(TOPICS, "porch")) == set(entities)


def test_node_id_is_stable_topic_safe_and_not_the_key_id():
    node = node_id_for("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")

    assert node == node_id_for("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    assert node.startswith("porchlight_") and len(node) == 23
    assert "NzbLsXh8" not in node


def test_commands_parse_only_for_a_camera_switch():
    assert TOPICS.parse_command(TOPICS.command("porch", "recording")) == ("porch", "recording")
    assert TOPICS.parse_command(TOPICS.command("porch", "analysis")) == ("porch", "analysis")
    for topic in (TOPICS.command("porch", "motion"), TOPICS.camera("porch", "recording"),
                  f"{TOPICS.base}/camera//recording/set",
                  f"{TOPICS.base}/camera/a/b/recording/set", "other/camera/porch/recording/set"):
        assert TOPICS.parse_command(topic) is None, topic


@given(st.text(max_size=300))
def test_any_topic_parses_to_nothing_or_to_its_own_command(text):
    for topic in (text, f"{TOPICS.base}/camera/{text}"):
        parsed = TOPICS.parse_command(topic)
        if parsed is not None:
            camera, switch = parsed
            assert switch in SWITCHES and camera
            assert TOPICS.command(camera, switch) == topic


@given(st.binary(max_size=64))
def test_any_payload_is_on_off_or_nothing(payload):
    value = parse_switch_payload(payload)
    assert value is None or payload.strip() in (b"ON", b"OFF")
    assert value is (None if value is None else payload.strip() == b"ON")


def test_switch_payloads():
    assert parse_switch_payload(b"ON") is True
    assert parse_switch_payload(b"OFF") is False
    assert parse_switch_payload(b"on") is None
    assert parse_switch_payload(b"ON" + b" " * 100) is None  # longer than any command


@pytest.mark.parametrize(("address", "lan"), [
    ("192.168.1.10", True), ("10.0.0.2", True), ("172.16.5.4", True), ("127.0.0.1", True),
    ("169.254.1.1", True), ("fe80::1", True), ("fd00::5", True), ("::1", True),
    ("8.8.8.8", False), ("2001:4860:4860::8888", False), ("100.64.0.1", False),
])
def test_lan_addresses(address, lan):
    assert is_lan_address(ipaddress.ip_address(address)) is lan


def test_a_broker_gets_snapshots_only_on_the_lan():
    assert asyncio.run(broker_on_lan("127.0.0.1", 1883)) is True
    assert asyncio.run(broker_on_lan("8.8.8.8", 1883)) is False
    # A name that does not resolve is not known to be on the LAN.
    assert asyncio.run(broker_on_lan("no-such-host.invalid", 1883)) is False


BASE = '[hub]\nname = "h"\n'


@pytest.mark.parametrize(("section", "error"), [
    ('[mqtt]\nport = 1883\n', "config.toml: mqtt.host: Field required"),
    ('[mqtt]\nhost = "broker.lan"\npassword = { file = "secrets/mqtt" }\n',
     "config.toml: mqtt: password needs a username"),
    ('[mqtt]\nhost = "broker.lan"\ndiscovery_prefix = "home/assistant"\n',
     "config.toml: mqtt.discovery_prefix: String should match pattern '^[A-Za-z0-9_-]{1,64}$'"),
    ('[mqtt]\nhost = "broker.lan"\nport = 0\n',
     "config.toml: mqtt.port: Input should be greater than or equal to 1"),
    ('[mqtt]\nhost = "broker.lan"\nswitches = "yes"\n',
     "config.toml: mqtt.switches: Input should be a valid boolean"),
    ('[mqtt]\nhost = "broker.lan"\npasword = "x"\n', "config.toml: mqtt.pasword: unknown key"),
    ('[mqtt]\nhost = "broker.lan"\nca_file = "secrets/ca.pem"\n',
     "config.toml: mqtt: ca_file is for a TLS broker: set tls = true too"),
    ('[mqtt]\nhost = "mqtt://broker.lan"\n',
     "config.toml: mqtt.host: String should match pattern '^[^\\s/:@]+$|^[0-9a-fA-F:]+$'"),
])
def test_bad_mqtt_config_is_refused_with_the_key_named(section, error):
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + section)
    assert str(caught.value) == error


def test_mqtt_config_defaults():
    config = parse_config(BASE + '[mqtt]\nhost = "192.168.1.5"\n').mqtt
    assert (config.port, config.discovery_prefix, config.topic_prefix, config.snapshots,
            config.switches) == (1883, "homeassistant", "porchlight", True, False)
    assert parse_config(BASE).mqtt is None


def test_camera_switches_are_written_to_config_toml(hub_dir):
    data = DataDir(hub_dir)
    add_camera(data, "porch", synthetic=True)
    add_camera(data, "drive", synthetic=True, mode="motion")

    set_camera_switches(data, "porch", recording=False, analysis=False)
    cameras = {c.name: c for c in parse_config(data.config.read_text()).cameras}
    assert (cameras["porch"].recording, cameras["porch"].analysis) == (False, False)
    set_camera_switches(data, "porch", recording=True)
    cameras = {c.name: c for c in parse_config(data.config.read_text()).cameras}
    assert (cameras["porch"].recording, cameras["porch"].analysis) == (True, False)
    assert "recording" not in data.config.read_text()  # back to the default: no key

    before = data.config.read_bytes()
    with pytest.raises(UsageError) as caught:
        set_camera_switches(data, "drive", analysis=False)
    assert str(caught.value) == ('camera drive records only around motion (mode = "motion"): '
                                 "its motion analysis cannot be turned off")
    with pytest.raises(UsageError) as caught:
        set_camera_switches(data, "ghost", recording=False)
    assert str(caught.value) == "no camera 'ghost' in config.toml"
    assert data.config.read_bytes() == before
