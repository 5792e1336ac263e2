"""Camera discovery: a WS-Discovery probe finds ipycam in a namespace, an mDNS browse finds an
RTSP service on loopback, and answers of any shape give typed errors only."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zeroconf import IPVersion, ServiceInfo, Zeroconf

from hub.cameras.discovery import (
    RTSP_SERVICE,
    DiscoveryReplyInvalid,
    discover_cameras,
    discover_onvif,
    parse_probe_matches,
)
from tests.ipycam_fixture import ipycam_missing, start_ipycam


@pytest.mark.root
@pytest.mark.skipif(ipycam_missing() is not None, reason=str(ipycam_missing()))
def test_ws_discovery_finds_the_camera_through_the_veth():
    camera = start_ipycam(name="Front Door")
    try:
        # Probe only from our end of the veth: the machine's own interfaces stay quiet.
        found = discover_onvif(timeout=2.0, interfaces=[camera.peer])
    finally:
        camera.stop()
    assert len(found) == 1, found
    [device] = found
    assert device["kind"] == "onvif"
    assert device["name"] == "Front Door"  # ipycam puts the name unencoded into its scopes
    assert (device["host"], device["port"]) == (camera.host, camera.onvif_port)
    assert device["xaddrs"] == [f"http://{camera.host}:{camera.onvif_port}/onvif/device_service"]
    assert device["id"].startswith("urn:uuid:")


def test_mdns_browse_finds_an_rtsp_service_on_loopback():
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    info = ServiceInfo(RTSP_SERVICE, "Garage Cam." + RTSP_SERVICE, port=8554,
                       addresses=[socket.inet_aton("127.0.0.1")], server="garage-cam.local.",
                       properties={"path": "/live/main"})
    zc.register_service(info)
    try:
        found = discover_cameras(timeout=2.0, interfaces=["127.0.0.1"])
    finally:
        zc.unregister_service(info)
        zc.close()
    assert {"kind": "rtsp", "name": "Garage Cam", "host": "127.0.0.1", "port": 8554,
            "url": "rtsp://127.0.0.1:8554/live/main"} in found
    assert all(d["kind"] == "rtsp" for d in found)


MATCH = """<?xml version="1.0" encoding="UTF-8"?>
<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"
 xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><e:Body><d:ProbeMatches><d:ProbeMatch>
<w:EndpointReference><w:Address>{epr}</w:Address></w:EndpointReference>
<d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>{scopes}</d:Scopes>
<d:XAddrs>{xaddrs}</d:XAddrs></d:ProbeMatch></d:ProbeMatches></e:Body></e:Envelope>"""


def test_probe_match_quirks():
    body = MATCH.format(
        epr="urn:uuid:1", xaddrs="http://[fe80::1]/onvif/device_service http://192.168.1.9:8000/x",
        scopes="onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/Back%20Yard")
    [device] = parse_probe_matches(body.encode(), source="192.168.1.9")
    assert (device["name"], device["host"], device["port"]) == ("Back Yard", "192.168.1.9", 8000)
    latin1 = MATCH.format(epr="urn:uuid:2", xaddrs="http://10.0.0.2/onvif/device_service",
                          scopes="onvif://www.onvif.org/name/Caf\xe9").encode("latin-1")
    assert parse_probe_matches(latin1)[0]["name"] == "Caf\ufffd"
    with pytest.raises(DiscoveryReplyInvalid, match="DTD"):
        parse_probe_matches(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')
    with pytest.raises(DiscoveryReplyInvalid, match="no ProbeMatch"):
        parse_probe_matches(MATCH.format(epr="urn:uuid:3", xaddrs="", scopes="").encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=800))
def test_probe_match_parser_raises_only_typed_errors_on_any_bytes(data):
    try:
        found = parse_probe_matches(data)
    except DiscoveryReplyInvalid:
        return
    assert all(d["kind"] == "onvif" for d in found)


_xml_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="<&"),
                    max_size=60)
_xaddrs = st.one_of(_xml_text, _xml_text.map(lambda s: "http://" + s),
                   st.from_regex(r"\Ahttps?://[a-z0-9:.\[\]]{0,20}(/[a-z]{0,5})? ?\Z"))


@settings(max_examples=300, deadline=None)
@given(_xml_text, _xml_text, _xaddrs, st.one_of(st.none(), _xml_text))
def test_probe_match_parser_on_well_formed_answers_with_odd_fields(epr, scopes, xaddrs, source):
    body = MATCH.format(epr=epr, scopes=scopes, xaddrs=xaddrs).encode("utf-8", "surrogatepass")
    try:
        found = parse_probe_matches(body, source=source)
    except DiscoveryReplyInvalid:
        return
    for device in found:
        assert isinstance(device["port"], int) and 0 <= device["port"] <= 65535
        assert device["host"] and device["xaddrs"]
        assert device["name"].isprintable() or device["name"] == ""
