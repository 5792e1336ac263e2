"""ONVIF cameras: resolve and record a real virtual camera (ipycam), refuse wrong credentials
clearly, and parse whatever a device sends into typed errors only."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zeep.exceptions import TransportError

from hub.cameras.admin import add_onvif_camera
from hub.cameras.sources import CameraState, CameraUnavailable
from hub.datadir import DataDir
from hub.errors import UsageError
from plugins.cameras.onvif import OnvifCamera, OnvifConfig
from plugins.cameras.onvif_client import (
    DeviceInfo,
    OnvifFaultReply,
    OnvifProfileMissing,
    OnvifReplyInvalid,
    Profile,
    choose_profiles,
    classify_onvif_error,
    is_auth_fault,
    motion_state,
    parse_device_information,
    usable_stream_uri,
)
from tests.counting_proxy import CountingProxy
from tests.hub.cameras.test_recorder import HubProcess, _decode_all, _segments
from tests.ipycam_fixture import ipycam_missing, start_ipycam

CAMERA_PASSWORD = "porch-onvif-pw"
WRONG_PASSWORD = "not-the-onvif-pw"
needs_ipycam = pytest.mark.skipif(ipycam_missing() is not None, reason=str(ipycam_missing()))


@pytest.fixture(scope="module")
def camera():
    """Run one ipycam (user admin) in a namespace for this module's tests."""
    virtual = start_ipycam(user="admin", password=CAMERA_PASSWORD)
    yield virtual
    virtual.stop()


def _add(hub_dir, tmp_path, camera, password: str, name: str = "porch",
         address: str | None = None) -> None:
    password_file = tmp_path / "onvif.password"
    password_file.write_text(password + "\n")
    add_onvif_camera(DataDir(hub_dir), name,
                     onvif=address or f"{camera.host}:{camera.onvif_port}",
                     user="admin", password_file=password_file)


def _wait_for_state(cli, hub_dir, wanted: str, seconds: float = 30.0) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        code, out, err = cli("camera", "list", "--data", hub_dir, "--json")
        assert code == 0, err
        [state] = json.loads(out)
        if state["state"] == wanted or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


@pytest.mark.root
@needs_ipycam
def test_resolves_device_profiles_and_stream_uris(camera, tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "cam.password").write_text(CAMERA_PASSWORD + "\n")
    source = OnvifCamera(OnvifConfig(host=camera.host, port=camera.onvif_port, user="admin",
                                     password={"file": "secrets/cam.password"},
                                     use_onvif_events=True), tmp_path)
    try:
        described = source.describe()
        # ipycam offers no events service: the hub is told to analyse frames instead.
        assert source.poll_motion() is None
    finally:
        source.close()
    assert described["device"]["manufacturer"] == "Porchlight Tests"
    assert described["device"]["model"] == "ipycam"
    assert [(p["token"], p["encoding"], p["width"]) for p in described["profiles"]] == [
        ("Profile_Main", "H264", 640), ("Profile_Sub", "H264", 320)]
    assert described["record"] == {
        "profile": "Profile_Main", "uri": f"rtsp://{camera.host}:{camera.rtsp_port}/video_main"}
    assert described["analysis"] == {
        "profile": "Profile_Sub", "uri": f"rtsp://{camera.host}:{camera.rtsp_port}/video_sub"}
    assert described["snapshot_uri"] == f"http://{camera.host}:{camera.onvif_port}/snapshot.jpg"


@pytest.mark.root
@needs_ipycam
def test_records_an_onvif_camera_into_the_vault(camera, hub_dir, tmp_path, cli,
                                                household_identity):
    _add(hub_dir, tmp_path, camera, CAMERA_PASSWORD)
    config = (hub_dir / "config.toml").read_text()
    assert 'type = "onvif"' in config and CAMERA_PASSWORD not in config
    assert 'password = {file = "secrets/porch.password"}' in config
    hub = HubProcess(hub_dir)
    try:
        state = _wait_for_state(cli, hub_dir, "online")
        time.sleep(14)  # one closed segment (about 10 s) and one sealed when the hub stops
    finally:
        log = hub.stop()
    assert state["state"] == "online", state
    assert CAMERA_PASSWORD not in log
    assert "ONVIF " + camera.host in log and "recording Profile_Main" in log
    segments = _segments(cli, hub_dir, "porch")
    assert len(segments) >= 2
    frames = _decode_all(hub_dir, household_identity)
    assert len(frames) == len(segments) and all(f > 0 for f in frames)


@pytest.mark.root
@needs_ipycam
def test_wrong_onvif_credentials_say_auth_failed_without_a_crash_loop(camera, hub_dir, tmp_path,
                                                                      cli):
    # The hub dials the device through a proxy that counts its connections and requests.
    with CountingProxy(camera.host, camera.onvif_port) as proxy:
        _add(hub_dir, tmp_path, camera, WRONG_PASSWORD, address=f"{proxy.host}:{proxy.port}")
        hub = HubProcess(hub_dir)
        try:
            state = _wait_for_state(cli, hub_dir, "auth failed")
            dialled = proxy.connections, proxy.requests
            # Wrong credentials are retried only after a long back-off: the 1 s back-off of
            # other failures, let alone a crash loop, would dial the device within this window.
            time.sleep(6)
            redialled = proxy.connections - dialled[0], proxy.requests - dialled[1]
            listed = cli("camera", "list", "--data", hub_dir, "--json")[1]
        finally:
            log = hub.stop()
    assert state["state"] == "auth failed"
    assert state["detail"] == (f"the ONVIF device at {proxy.host}:{proxy.port} refused "
                               "the user or password; check the camera's user and password")
    assert dialled[0] >= 1 and dialled[1] >= 1
    assert redialled == (0, 0), f"dialled again {redialled[0]} times, {redialled[1]} requests"
    assert log.count("hub.cameras.recorder: camera porch: auth failed") == 1, log
    assert WRONG_PASSWORD not in log and WRONG_PASSWORD not in listed
    assert _segments(cli, hub_dir, "porch") == []


def test_add_onvif_camera_rejects_bad_input_and_changes_nothing(hub_dir, tmp_path):
    config = (hub_dir / "config.toml").read_text()
    data = DataDir(hub_dir)
    with pytest.raises(UsageError, match=r"^--onvif 'cam:99999' is not HOST\[:PORT\]"):
        add_onvif_camera(data, "porch", onvif="cam:99999", user="admin", password_file=None)
    with pytest.raises(UsageError, match="^cannot read the password file"):
        add_onvif_camera(data, "porch", onvif="cam", user="admin",
                         password_file=tmp_path / "missing")
    assert (hub_dir / "config.toml").read_text() == config
    assert not (hub_dir / "secrets" / "porch.password").exists()
    table = add_onvif_camera(data, "porch", onvif="[fd00::5]", user=None, password_file=None,
                             profile="1")
    assert table == {"name": "porch", "type": "onvif", "host": "fd00::5", "port": "80",
                     "profile": "1", "mode": "continuous"}


# ---- parsers of device replies: typed errors only, whatever the device sends ----

ENVELOPE = (b'<?xml version="1.0" encoding="UTF-8"?>'
            b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            b'xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><s:Body>%s</s:Body></s:Envelope>')


def _device_information(**fields: bytes) -> bytes:
    inner = b"".join(b"<tds:%s>%s</tds:%s>" % (k.encode(), v, k.encode())
                     for k, v in fields.items())
    return ENVELOPE % (b"<tds:GetDeviceInformationResponse>%s</tds:GetDeviceInformationResponse>"
                       % inner)


def test_invalid_utf8_in_device_information_is_replaced_not_fatal():
    body = _device_information(Manufacturer=b"Caf\xe9 Cams", Model=b"C-1",
                               SerialNumber=b"\xff\xfe7")
    info = parse_device_information(body)
    assert info == DeviceInfo("Caf\ufffd Cams", "C-1", "", "\ufffd\ufffd7", "")


def test_faults_are_told_apart():
    ipycam = (ENVELOPE % b"<s:Fault><s:Code><s:Value>s:Receiver</s:Value></s:Code><s:Reason>"
              b'<s:Text xml:lang="en">Sender not authorized</s:Text></s:Reason></s:Fault>')
    with pytest.raises(OnvifFaultReply) as caught:
        parse_device_information(ipycam)
    assert is_auth_fault(caught.value.code, caught.value.subcodes, caught.value.reason)
    standard = (ENVELOPE % b"<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode>"
                b"<s:Value>ter:NotAuthorized</s:Value></s:Subcode></s:Code></s:Fault>")
    with pytest.raises(OnvifFaultReply) as caught:
        parse_device_information(standard)
    assert caught.value.subcodes == ["ter:NotAuthorized"]
    error = classify_onvif_error(caught.value, "cam.lan", 80)
    assert error.state == CameraState.AUTH_FAILED
    assert str(error) == ("the ONVIF device at cam.lan:80 refused the user or password; "
                          "check the camera's user and password")
    refused = classify_onvif_error(TransportError("refused", status_code=401), "cam.lan", 80)
    assert refused.state == CameraState.AUTH_FAILED
    assert not is_auth_fault("s:Receiver", ["ter:ActionNotSupported"],
                             "Optional Action Not Implemented")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_device_information_parser_raises_only_typed_errors(body):
    try:
        info = parse_device_information(body)
    except OnvifReplyInvalid:
        return
    assert isinstance(info, DeviceInfo)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["Manufacturer", "Model", "FirmwareVersion", "SerialNumber",
                                        "HardwareId"]),
                       st.binary(max_size=40).filter(lambda b: b"<" not in b and b"&" not in b)))
def test_device_information_fields_come_back_printable(fields):
    try:
        info = parse_device_information(_device_information(**fields))
    except OnvifReplyInvalid:
        return  # e.g. a byte XML forbids even after decoding
    for value in (info.manufacturer, info.model, info.firmware, info.serial, info.hardware_id):
        assert value.isprintable() or value == ""


profiles = st.lists(st.builds(
    Profile, token=st.text(max_size=8), name=st.text(max_size=8),
    encoding=st.sampled_from([None, "H264", "H265", "JPEG", "MPEG4"]),
    width=st.one_of(st.none(), st.integers(1, 4000)),
    height=st.one_of(st.none(), st.integers(1, 3000))),
    max_size=5)


@given(profiles, st.one_of(st.none(), st.integers(-2, 6), st.text(max_size=8)))
def test_profile_choice_is_a_listed_video_profile_or_a_typed_error(listed, wanted):
    try:
        main, sub = choose_profiles(listed, wanted)
    except (OnvifReplyInvalid, OnvifProfileMissing):
        return
    assert main in listed and main.encoding is not None
    assert sub is None or (sub in listed and sub.token != main.token)


@given(st.one_of(st.text(max_size=80), st.text(max_size=60).map(lambda s: "rtsp://" + s),
                 st.from_regex(r"\Artsp://[a-z0-9:@\[\]]{0,20}(/[a-z]{0,5})?\Z")))
def test_stream_uris_are_rtsp_without_credentials_or_a_typed_error(uri):
    try:
        clean = usable_stream_uri(uri, "10.0.0.5")
    except OnvifReplyInvalid:
        return
    assert clean.startswith(("rtsp://", "rtsps://"))
    # No credentials before the host; an '@' after it (`rtsp://cam#@`) is no user or password.
    assert "@" not in urlsplit(clean).netloc


def test_stream_uri_quirks():
    assert (usable_stream_uri("RTSP://admin:pw@0.0.0.0:554/ch1", "cam.lan")
            == "rtsp://cam.lan:554/ch1")
    with pytest.raises(OnvifReplyInvalid, match="not RTSP"):
        usable_stream_uri("http://cam.lan/video.mjpg", "cam.lan")


_topics = st.one_of(st.sampled_from(["tns1:RuleEngine/CellMotionDetector/Motion",
                                      "tns1:VideoSource/MotionAlarm"]), st.text(max_size=20))
_items = st.dictionaries(st.sampled_from(["IsMotion", "State", "Other"]),
                         st.sampled_from(["true", "false", "1", "0", "maybe"]))


@given(st.lists(st.tuples(_topics, _items), max_size=6))
def test_motion_state_is_the_last_motion_notification(notifications):
    keys = {"tns1:RuleEngine/CellMotionDetector/Motion": "IsMotion",
            "tns1:VideoSource/MotionAlarm": "State"}
    said = [items[keys[topic]] for topic, items in notifications
            if topic in keys and items.get(keys[topic]) in ("true", "false", "1", "0")]
    assert motion_state(notifications) == (said[-1] in ("true", "1") if said else None)


def test_motion_state_reads_the_standard_topics():
    assert motion_state([("tns1:RuleEngine/CellMotionDetector/Motion", {"IsMotion": "true"})])
    assert motion_state([("tns1:VideoSource/MotionAlarm", {"State": "true"}),
                         ("tns1:VideoSource/MotionAlarm", {"State": "false"})]) is False
    assert motion_state([("tns1:Device/Trigger/DigitalInput", {"LogicalState": "true"})]) is None


def test_unreachable_device_is_reported_with_what_to_do(tmp_path):
    # Port 9 (discard) on loopback: nothing listens there, so the connection is refused.
    source = OnvifCamera(OnvifConfig(host="127.0.0.1", port=9), tmp_path)
    try:
        with pytest.raises(CameraUnavailable) as caught:
            source.open_record()
    finally:
        source.close()
    assert caught.value.state == CameraState.UNREACHABLE
    assert str(caught.value).startswith("cannot reach the ONVIF device at 127.0.0.1:9 (")
    assert str(caught.value).endswith("); check the host and port")
