"""mDNS (zeroconf) for Porchlight: hubs and gateways advertise `_porchlight._tcp.local.` with
their kid and role, so hubs on one LAN find each other and a new hub finds its gateway."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

SERVICE = "_porchlight._tcp.local."
MAX_PROPERTY = 255


@dataclass(frozen=True)
class Advertised:
    """A hub or gateway found on the LAN (what it claims; its key is checked separately)."""

    kid: str
    role: str
    host: str
    port: int
    url: str | None = None

    @property
    def origin(self) -> str:
        """Return the peer's LAN API base URL."""
        return f"http://{self.host}:{self.port}"


def service_info(kid: str, role: str, address: str, port: int, url: str | None = None) -> ServiceInfo:
    """Build the mDNS record of a hub or gateway."""
    properties = {"kid": kid, "role": role, "v": "1"}
    if url:
        properties["url"] = url[:MAX_PROPERTY]
    return ServiceInfo(SERVICE, f"{role}-{kid[:16]}.{SERVICE}",
                       addresses=[socket.inet_aton(address)], port=port, properties=properties)


def parse_service(info: ServiceInfo) -> Advertised | None:
    """Read an mDNS record; None if it is not a well-formed Porchlight record."""
    props = {k.decode(errors="replace"): (v or b"").decode(errors="replace")
             for k, v in (info.properties or {}).items()}
    kid, role = props.get("kid", ""), props.get("role", "")
    addresses = info.parsed_addresses(IPVersion.V4Only)
    if not (0 < len(kid) <= 64) or role not in ("hub", "gateway") or not addresses \
            or not info.port:
        return None
    return Advertised(kid, role, addresses[0], info.port, props.get("url") or None)


class _Collector(ServiceListener):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.names.add(name)

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.names.add(name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.names.discard(name)


def browse(timeout: float = 3.0, interfaces: list[str] | None = None,
           role: str | None = None) -> list[Advertised]:
    """Listen for Porchlight hubs and gateways on the LAN for `timeout` seconds."""
    zc = Zeroconf(interfaces=interfaces or None, ip_version=IPVersion.V4Only)
    try:
        collector = _Collector()
        browser = ServiceBrowser(zc, SERVICE, collector)
        time.sleep(timeout)
        browser.cancel()
        found = []
        for name in sorted(collector.names):
            info = zc.get_service_info(SERVICE, name, timeout=1500)
            parsed = parse_service(info) if info is not None else None
            if parsed is not None and (role is None or parsed.role == role):
                found.append(parsed)
        return found
    finally:
        zc.close()


class Advertiser:
    """Keep one mDNS record published until closed (a sync API, for a foreground gateway)."""

    def __init__(self, info: ServiceInfo, interfaces: list[str] | None = None) -> None:
        self.info = info
        self.zc = Zeroconf(interfaces=interfaces or None, ip_version=IPVersion.V4Only)
        self.zc.register_service(info)

    def close(self) -> None:
        """Withdraw the record and stop zeroconf."""
        self.zc.unregister_service(self.info)
        self.zc.close()
