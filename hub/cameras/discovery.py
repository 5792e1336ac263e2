"""Find cameras on the LAN: a WS-Discovery probe for ONVIF devices and an mDNS browse for RTSP.

The WS-Discovery probe is written here rather than taken from PyPI `wsdiscovery`: that library
probes on every interface of the machine (it offers no way to choose), starts four threads and
an address monitor, and binds UDP 3702. A probe is one multicast datagram and a few unicast
answers, and choosing the interfaces is what keeps the tests off the machine's real network.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote, urlsplit

from zeroconf import (
    InterfaceChoice,
    IPVersion,
    ServiceBrowser,
    ServiceStateChange,
    Zeroconf,
    get_all_addresses,
)

from hub.errors import PorchlightError

log = logging.getLogger(__name__)

WS_DISCOVERY_GROUP = ("239.255.255.250", 3702)
RTSP_SERVICE = "_rtsp._tcp.local."
MAX_DATAGRAM = 65535
# Repeat the multicast probe once: UDP on Wi-Fi loses packets (WS-Discovery repeats too).
PROBE_REPEAT_GAP_S = 0.2
_NAME_SCOPE = "onvif://www.onvif.org/name/"

PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"
 xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<e:Header>
<w:MessageID>{message_id}</w:MessageID>
<w:To e:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>
<w:Action e:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</w:Action>
</e:Header>
<e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body>
</e:Envelope>
"""


class DiscoveryReplyInvalid(PorchlightError):
    """A discovery answer is not the WS-Discovery Porchlight expects."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _clean(text: str, limit: int = 200) -> str:
    """Keep printable characters only: device names end up in terminals."""
    return "".join(c for c in text if c.isprintable()).strip()[:limit]


def _words(element: ET.Element, name: str) -> list[str]:
    for child in element.iter():
        if _local(str(child.tag)) == name and child.text:
            return child.text.split()
    return []


def _scope_name(scopes: list[str]) -> str:
    """Return the device name from its onvif://www.onvif.org/name/ scope."""
    for i, scope in enumerate(scopes):
        if scope.startswith(_NAME_SCOPE):
            # Scopes are space-separated URIs, so a name must be percent-encoded; some devices
            # put it raw ("name/Front Door"): take the following words that are not URIs too.
            words = [scope[len(_NAME_SCOPE):]]
            words += [w for w in _takewhile_not_uri(scopes[i + 1:])]
            return _clean(unquote(" ".join(words)))
    return ""


def _takewhile_not_uri(words: list[str]):
    for word in words:
        if "://" in word or word.startswith("urn:"):
            return
        yield word


def _host_port(xaddr: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(xaddr)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:  # a bad port or IPv6 literal
        return None
    return (parts.hostname, port) if parts.hostname else None


def parse_probe_matches(data: bytes, source: str | None = None) -> list[dict]:
    """Read the ProbeMatch entries of a WS-Discovery answer; raise DiscoveryReplyInvalid."""
    if len(data) > MAX_DATAGRAM:
        raise DiscoveryReplyInvalid("the answer is larger than a UDP datagram")
    # Device names come from the owner and some cameras send them in Latin-1 under a UTF-8
    # declaration: decode with replacement rather than drop the whole answer.
    text = data.decode("utf-8", errors="replace")
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise DiscoveryReplyInvalid("the answer declares a DTD or entities (never in WS-Discovery)")
    try:
        root = ET.fromstring(text)
    except (ET.ParseError, ValueError) as err:
        raise DiscoveryReplyInvalid(f"the answer is not well-formed XML ({err})") from None
    found = []
    for match in root.iter():
        if _local(str(match.tag)) != "ProbeMatch":
            continue
        xaddrs = [x for x in _words(match, "XAddrs")
                  if x.lower().startswith(("http://", "https://"))]
        if not xaddrs:
            continue  # a device must say where its service is; a Resolve is not worth a round trip
        endpoint = _words(match, "Address")
        addresses = [(x, a) for x in xaddrs if (a := _host_port(x)) is not None]
        if not addresses:
            continue
        chosen, (host, port) = next(((x, a) for x, a in addresses if a[0] == source), addresses[0])
        if not _clean(host):
            continue
        found.append({
            "kind": "onvif",
            "name": _scope_name(_words(match, "Scopes")),
            "host": _clean(host),
            "port": port,
            "xaddrs": [_clean(x, 400) for x in xaddrs],
            "id": _clean(endpoint[0] if endpoint else chosen, 200),
        })
    if not found:
        raise DiscoveryReplyInvalid("the answer holds no ProbeMatch with an address")
    return found


def _probe_sockets(interfaces: list[str] | None) -> list[socket.socket]:
    if interfaces is None:
        interfaces = [a for a in get_all_addresses() if not a.startswith("127.")]
    sockets = []
    for address in interfaces:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.bind((address, 0))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
            # TTL 1: a probe for cameras stays on the local link.
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setblocking(False)
        except OSError as err:
            log.warning("WS-Discovery: cannot probe from %s: %s", address, err)
            sock.close()
            continue
        sockets.append(sock)
    return sockets


def discover_onvif(timeout: float = 3.0, interfaces: list[str] | None = None) -> list[dict]:
    """Probe for ONVIF cameras from each interface address and return those that answered."""
    message = PROBE.format(message_id=f"urn:uuid:{uuid.uuid4()}").encode()
    sockets = _probe_sockets(interfaces)
    found: dict[str, dict] = {}
    with selectors.DefaultSelector() as selector:
        try:
            for sock in sockets:
                selector.register(sock, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            repeat_at = time.monotonic() + PROBE_REPEAT_GAP_S
            _send(sockets, message)
            while (left := deadline - time.monotonic()) > 0:
                if repeat_at is not None and time.monotonic() >= repeat_at:
                    _send(sockets, message)
                    repeat_at = None
                wait = left if repeat_at is None else min(left, repeat_at - time.monotonic())
                for key, _ in selector.select(max(wait, 0.0)):
                    _receive(key.fileobj, found)
        finally:
            for sock in sockets:
                sock.close()
    return sorted(found.values(), key=lambda d: (d["host"], d["port"], d["id"]))


def _send(sockets: list[socket.socket], message: bytes) -> None:
    for sock in sockets:
        try:
            sock.sendto(message, WS_DISCOVERY_GROUP)
        except OSError as err:
            log.warning("WS-Discovery: probe from %s failed: %s", sock.getsockname()[0], err)


def _receive(sock: socket.socket, found: dict[str, dict]) -> None:
    try:
        data, (address, _) = sock.recvfrom(MAX_DATAGRAM)
    except OSError:
        return
    try:
        for device in parse_probe_matches(data, source=address):
            found.setdefault(device["id"], device)
    except DiscoveryReplyInvalid as err:
        log.debug("WS-Discovery: ignored an answer from %s: %s", address, err)


def discover_rtsp_mdns(timeout: float = 3.0, interfaces: list[str] | None = None) -> list[dict]:
    """Browse mDNS for `_rtsp._tcp` services and return each with its rtsp:// URL."""
    if interfaces == []:
        return []
    names: set[str] = set()

    def on_change(zeroconf, service_type, name, state_change) -> None:
        if state_change is not ServiceStateChange.Removed:
            names.add(name)

    zc = Zeroconf(interfaces=InterfaceChoice.All if interfaces is None else interfaces,
                  ip_version=IPVersion.V4Only)
    try:
        browser = ServiceBrowser(zc, RTSP_SERVICE, handlers=[on_change])
        try:
            time.sleep(timeout)
        finally:
            browser.cancel()
        found = []
        for name in sorted(names):
            # Answers to the browse usually carry SRV, TXT and A already: this reads the cache.
            info = zc.get_service_info(RTSP_SERVICE, name, timeout=1000)
            if info is None or not info.parsed_addresses() or not info.port:
                continue
            host = info.parsed_addresses()[0]
            path = (info.properties or {}).get(b"path") or b""
            path = _clean(path.decode("utf-8", errors="replace"), 400).lstrip("/")
            found.append({
                "kind": "rtsp",
                "name": _clean(name.removesuffix("." + RTSP_SERVICE)),
                "host": host,
                "port": info.port,
                "url": f"rtsp://{host}:{info.port}/{path}",
            })
        return found
    finally:
        zc.close()


def discover_cameras(timeout: float = 3.0, interfaces: list[str] | None = None) -> list[dict]:
    """Run the ONVIF probe and the mDNS browse side by side; return what answered."""
    with ThreadPoolExecutor(2, thread_name_prefix="discovery") as pool:
        onvif = pool.submit(discover_onvif, timeout, interfaces)
        rtsp = pool.submit(discover_rtsp_mdns, timeout, interfaces)
        return onvif.result() + rtsp.result()
