"""Talk ONVIF to a camera (onvif-zeep-async): device information, profiles, stream URIs, events.

Everything here is a coroutine or a pure function; plugins/cameras/onvif.py runs the coroutines on
the camera's private event loop. Replies are parsed defensively: camera firmware varies widely,
and a reply Porchlight cannot use becomes a typed error, never a crash of the camera's thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from hub.cameras.sources import CameraState, CameraUnavailable, redact_url, split_credentials
from hub.errors import PorchlightError

log = logging.getLogger(__name__)

# The whole conversation (5-7 SOAP calls) must fit in this; the library's own default is 90 s.
ONVIF_TIMEOUT_S = 10.0
MAX_REPLY_BYTES = 1 << 20
# Codecs Porchlight records by stream copy into MP4; other profiles (MJPEG) only get analysed.
RECORDABLE = ("H264", "H265", "HEVC")
# ONVIF motion topics and the data item that says whether motion is on (Profile S/T devices).
MOTION_TOPICS = {
    "RuleEngine/CellMotionDetector/Motion": "IsMotion",
    "RuleEngine/MotionRegionDetector/Motion": "State",
    "VideoSource/MotionAlarm": "State",
}
_AUTH_WORDS = ("notauthorized", "not authorized", "unauthorized", "failedauthentication",
               "authority failure", "invalid username", "authentication failed")


class OnvifReplyInvalid(PorchlightError):
    """A device's reply is not the ONVIF Porchlight expects."""


class OnvifProfileMissing(PorchlightError):
    """The configured profile is not on the device."""


class OnvifFaultReply(OnvifReplyInvalid):
    """A device answered with a SOAP fault."""

    def __init__(self, code: str, subcodes: list[str], reason: str) -> None:
        super().__init__(f"the device answered with a fault: {reason or code or 'no reason'}")
        self.code = code
        self.subcodes = subcodes
        self.reason = reason


@dataclass(frozen=True)
class DeviceInfo:
    """What GetDeviceInformation says about a device."""

    manufacturer: str
    model: str
    firmware: str
    serial: str
    hardware_id: str


@dataclass(frozen=True)
class Profile:
    """One media profile: a video encoder configuration the device can stream."""

    token: str
    name: str
    encoding: str | None
    width: int | None
    height: int | None

    @property
    def pixels(self) -> int:
        """Return the frame area (0 when the device does not say)."""
        return (self.width or 0) * (self.height or 0)


@dataclass(frozen=True)
class ResolvedDevice:
    """A device's identity and the URIs to record, analyse and snapshot (no credentials)."""

    info: DeviceInfo
    profiles: tuple[Profile, ...]
    record: Profile
    record_uri: str
    analysis: Profile | None
    analysis_uri: str | None
    snapshot_uri: str | None

    def describe(self) -> dict:
        """Return a JSON-ready summary for the owner."""
        return {
            "device": asdict(self.info),
            "profiles": [asdict(p) for p in self.profiles],
            "record": {"profile": self.record.token, "uri": self.record_uri},
            "analysis": ({"profile": self.analysis.token, "uri": self.analysis_uri}
                         if self.analysis else None),
            "snapshot_uri": self.snapshot_uri,
        }


# ---- pure parsing and rules (no I/O; fuzzed by tests/hub/cameras/test_onvif.py) ----

def _clean(text: str | None, limit: int = 128) -> str:
    """Keep printable characters only: device strings end up in logs and terminals."""
    return "".join(c for c in (text or "") if c.isprintable()).strip()[:limit]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_xml(body: bytes) -> ET.Element:
    """Parse a device's XML reply; raise OnvifReplyInvalid if it is not plain, well-formed XML."""
    if len(body) > MAX_REPLY_BYTES:
        raise OnvifReplyInvalid(f"the reply is larger than {MAX_REPLY_BYTES} bytes")
    # Some cameras send Latin-1 names in replies that declare UTF-8, and a strict parser
    # rejects the whole reply: decode with replacement so only those characters are lost.
    text = body.decode("utf-8", errors="replace")
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise OnvifReplyInvalid("the reply declares a DTD or entities (never in ONVIF)")
    try:
        return ET.fromstring(text)
    except (ET.ParseError, ValueError) as err:
        raise OnvifReplyInvalid(f"the reply is not well-formed XML ({err})") from None


def find_fault(root: ET.Element) -> OnvifFaultReply | None:
    """Return the SOAP fault in a parsed reply, or None."""
    for element in root.iter():
        if _local(str(element.tag)) != "Fault":
            continue
        values = [_clean(e.text) for e in element.iter()
                  if _local(str(e.tag)) in ("Value", "faultcode")]
        reasons = [_clean(e.text, 200) for e in element.iter()
                   if _local(str(e.tag)) in ("Text", "faultstring") and e.text]
        return OnvifFaultReply(values[0] if values else "", values[1:],
                               reasons[0] if reasons else "")
    return None


def parse_device_information(body: bytes) -> DeviceInfo:
    """Read a GetDeviceInformation reply; raise OnvifReplyInvalid (or OnvifFaultReply)."""
    root = parse_xml(body)
    fault = find_fault(root)
    if fault is not None:
        raise fault
    for element in root.iter():
        if _local(str(element.tag)) == "GetDeviceInformationResponse":
            fields = {_local(str(child.tag)): _clean(child.text) for child in element}
            return DeviceInfo(fields.get("Manufacturer", ""), fields.get("Model", ""),
                              fields.get("FirmwareVersion", ""), fields.get("SerialNumber", ""),
                              fields.get("HardwareId", ""))
    raise OnvifReplyInvalid("the reply has no GetDeviceInformationResponse")


def is_auth_fault(code: str, subcodes: list[str], reason: str) -> bool:
    """Say whether a SOAP fault means the user or password was refused."""
    # The standard answer is subcode ter:NotAuthorized, but firmware varies: some put it in the
    # code, some only say so in the reason text ("Sender not authorized"), some use the
    # WS-Security code wsse:FailedAuthentication.
    text = " ".join([code, *subcodes, reason]).lower()
    return any(word in text for word in _AUTH_WORDS)


def choose_profiles(profiles: list[Profile],
                    wanted: int | str | None) -> tuple[Profile, Profile | None]:
    """Pick the profile to record (`wanted`: token or 0-based index) and the smallest other one."""
    video = [p for p in profiles if p.encoding is not None]
    if not video:
        raise OnvifReplyInvalid("the device lists no video profile")
    tokens = ", ".join(p.token for p in profiles)
    if isinstance(wanted, int):
        if not 0 <= wanted < len(profiles) or profiles[wanted].encoding is None:
            raise OnvifProfileMissing(f"has no video profile number {wanted} "
                                      f"(its profiles, from 0: {tokens}); fix `profile`")
        main = profiles[wanted]
    elif wanted is not None:
        main = next((p for p in video if p.token == wanted), None)
        if main is None:
            raise OnvifProfileMissing(f"has no video profile {wanted!r} (it has: {tokens}); "
                                      "fix `profile`")
    else:
        main = next((p for p in video if p.encoding.upper() in RECORDABLE), video[0])
    others = [p for p in video if p.token != main.token]
    sub = min(others, key=lambda p: p.pixels) if others else None
    if sub is not None and main.pixels and sub.pixels >= main.pixels:
        sub = None  # no smaller stream: analysing the main one costs the same
    return main, sub


def usable_stream_uri(uri: str | None, host: str) -> str:
    """Return an RTSP URI without credentials; raise OnvifReplyInvalid if it is not RTSP."""
    if not uri or not isinstance(uri, str):
        raise OnvifReplyInvalid("the device returned no stream URI")
    try:
        clean, _, _ = split_credentials(uri.strip())
        parts = urlsplit(clean)
        valid = (parts.scheme.lower() in ("rtsp", "rtsps") and parts.hostname
                 and not any(c.isspace() for c in clean) and (parts.port or 1))
    except ValueError:  # a bad port or IPv6 literal
        valid = False
    if not valid:
        raise OnvifReplyInvalid(
            f"the device returned a stream URI that is not RTSP: {uri[:200]!r}")
    clean = parts.scheme.lower() + clean[len(parts.scheme):]
    # Some firmware reports 0.0.0.0 or a loopback address as its own: use the address we reached.
    if parts.hostname in ("0.0.0.0", "::", "localhost") or parts.hostname.startswith("127."):
        bracketed = f"[{host}]" if ":" in host else host
        netloc = bracketed + (f":{parts.port}" if parts.port else "")
        clean = urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, parts.fragment))
    return clean


def motion_state(notifications: list[tuple[str, dict[str, str]]]) -> bool | None:
    """Return the last motion state in (topic, data items) notifications, or None if none says."""
    state = None
    for topic, items in notifications:
        name = topic.split(":", 1)[-1] if isinstance(topic, str) else ""
        key = MOTION_TOPICS.get(name)
        if key is None or not isinstance(items, dict):
            continue
        value = str(items.get(key, "")).strip().lower()
        if value in ("true", "1"):
            state = True
        elif value in ("false", "0"):
            state = False
    return state


def classify_onvif_error(err: BaseException, host: str, port: int) -> CameraUnavailable:
    """Turn a failed ONVIF conversation into a camera state and a message saying what to do."""
    from onvif.exceptions import ONVIFAuthError
    from zeep.exceptions import Fault, TransportError

    where = f"the ONVIF device at {host}:{port}"
    chain = list(_chain(err))
    for cause in chain:
        if (isinstance(cause, ONVIFAuthError)
                or isinstance(cause, TransportError) and cause.status_code in (401, 403)
                or isinstance(cause, Fault) and is_auth_fault(
                    str(cause.code or ""), [str(s) for s in cause.subcodes or []],
                    str(cause.message or ""))
                or isinstance(cause, OnvifFaultReply) and is_auth_fault(
                    cause.code, cause.subcodes, cause.reason)):
            return CameraUnavailable(f"{where} refused the user or password; "
                                     "check the camera's user and password",
                                     CameraState.AUTH_FAILED)
    if isinstance(err, OnvifProfileMissing):
        return CameraUnavailable(f"{where} {err}", CameraState.UNREACHABLE)
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            why = cause.strerror or str(cause)
            return CameraUnavailable(f"the ONVIF device's host {host} cannot be resolved ({why}); "
                                     "check the host, or use its IP address",
                                     CameraState.UNREACHABLE)
    for cause in chain:
        if isinstance(cause, TimeoutError):
            return CameraUnavailable(f"{where} did not answer within {ONVIF_TIMEOUT_S:.0f} s; "
                                     "check the host and port", CameraState.UNREACHABLE)
        if isinstance(cause, aiohttp.ClientError | OSError):
            reason = redact_url(str(cause)) or type(cause).__name__
            return CameraUnavailable(f"cannot reach {where} ({reason}); check the host and port",
                                     CameraState.UNREACHABLE)
    reason = redact_url(str(getattr(err, "message", "") or err))[:300] or type(err).__name__
    return CameraUnavailable(f"{where} sent a reply Porchlight cannot use: {reason}",
                             CameraState.UNREACHABLE)


def _chain(err: BaseException):
    """Yield an error and the errors it was raised from (libraries wrap each other's)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


# ---- the conversation with the device ----

def connect(host: str, port: int, user: str | None, password: str | None):
    """Return an ONVIFCamera client; it does no I/O until awaited."""
    # Imported here: onvif.client configures root logging on import, which must not happen
    # before the hub sets up its own logging (and CLI commands that never talk ONVIF skip it).
    from onvif import ONVIFCamera

    # no_cache: the WSDLs ship with the package, so zeep's sqlite cache in the home dir is
    # never needed. adjust_time: cameras without NTP drift, and WS-Security digests carry a
    # timestamp the device checks against its own clock.
    return ONVIFCamera(host, port, user or None, password or None, no_cache=True,
                       adjust_time=True)


async def resolve_device(host: str, port: int, user: str | None, password: str | None,
                         profile: int | str | None) -> ResolvedDevice:
    """Ask the device who it is, which profiles it has, and where their streams are."""
    device = connect(host, port, user, password)
    try:
        async with asyncio.timeout(ONVIF_TIMEOUT_S):
            await device.update_xaddrs()
            info = await _device_information(device)
            media = await device.create_media_service()
            profiles = [_profile(p) for p in (await media.GetProfiles() or [])]
            main, sub = choose_profiles(profiles, profile)
            main_uri = usable_stream_uri(await _stream_uri(media, main.token), host)
            sub_uri = usable_stream_uri(await _stream_uri(media, sub.token), host) if sub else None
            snapshot = await device.get_snapshot_uri(main.token)
    finally:
        await device.close()
    if sub_uri == main_uri:
        sub, sub_uri = None, None
    return ResolvedDevice(info, tuple(profiles), main, main_uri, sub, sub_uri,
                          split_credentials(snapshot)[0] if snapshot else None)


async def _device_information(device) -> DeviceInfo:
    service = await device.create_devicemgmt_service()
    # Fetched raw and parsed here: zeep's strict parser rejects a whole reply for one badly
    # encoded manufacturer name, which some cameras send (see parse_xml).
    with service.zeep_client.settings(raw_response=True):
        response = await service.GetDeviceInformation()
    if response.status_code in (401, 403):
        from zeep.exceptions import TransportError

        raise TransportError("GetDeviceInformation refused", status_code=response.status_code)
    return parse_device_information(response.content or b"")


async def _stream_uri(media, token: str) -> str | None:
    reply = await media.GetStreamUri({
        "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
        "ProfileToken": token,
    })
    return getattr(reply, "Uri", None)


def _profile(raw: Any) -> Profile:
    encoder = getattr(raw, "VideoEncoderConfiguration", None)
    resolution = getattr(encoder, "Resolution", None)
    encoding = getattr(encoder, "Encoding", None)

    def number(value: Any) -> int | None:
        return value if isinstance(value, int) and value > 0 else None

    return Profile(
        token=_clean(str(getattr(raw, "token", "") or "")),
        name=_clean(str(getattr(raw, "Name", "") or "")),
        encoding=_clean(str(encoding)) if encoder is not None and encoding else None,
        width=number(getattr(resolution, "Width", None)),
        height=number(getattr(resolution, "Height", None)),
    )


class MotionSubscription:
    """A PullPoint subscription to a device's motion events."""

    PULL_TIMEOUT = dt.timedelta(seconds=1)
    INTERVAL = dt.timedelta(seconds=60)

    def __init__(self, device, manager) -> None:
        self.device = device
        self.manager = manager
        self.lost = False

    @classmethod
    async def start(cls, host: str, port: int, user: str | None,
                    password: str | None) -> MotionSubscription | None:
        """Subscribe to the device's events; return None if it offers no PullPoint service."""
        device = connect(host, port, user, password)
        try:
            async with asyncio.timeout(ONVIF_TIMEOUT_S):
                await device.update_xaddrs()
                if "http://www.onvif.org/ver10/events/wsdl" not in device.xaddrs:
                    await device.close()
                    return None
                subscription = cls(device, None)
                subscription.manager = await device.create_pullpoint_manager(
                    cls.INTERVAL, subscription._on_lost)
                return subscription
        except BaseException:
            await device.close()
            raise

    def _on_lost(self) -> None:
        self.lost = True

    async def pull(self) -> bool | None:
        """Pull waiting notifications; return the last motion state they carry, or None."""
        service = self.manager.get_service()
        async with asyncio.timeout(ONVIF_TIMEOUT_S):
            reply = await service.PullMessages({"MessageLimit": 64, "Timeout": self.PULL_TIMEOUT})
        messages = getattr(reply, "NotificationMessage", None) or []
        return motion_state([_notification(m) for m in messages])

    async def close(self) -> None:
        """Unsubscribe and close the device's connections."""
        try:
            if self.manager is not None:
                await self.manager.shutdown()
        finally:
            await self.device.close()


def _notification(message: Any) -> tuple[str, dict[str, str]]:
    """Flatten a zeep NotificationMessage to (topic, data items), tolerating odd firmware."""
    try:
        topic = str(message.Topic._value_1 or "")
        items = message.Message._value_1.Data.SimpleItem or []
        return topic, {str(i.Name): str(i.Value) for i in items}
    except (AttributeError, TypeError):
        return "", {}
