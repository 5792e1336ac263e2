"""Camera sources as the hub sees them: the protocol plugins implement, states, and failures."""

from __future__ import annotations

import ipaddress
import re
import socket
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit, urlunsplit

import av
from pydantic import BaseModel, ValidationError

from hub.config import CameraEntry, describe
from hub.errors import ConfigError, PorchlightError


class CameraState(StrEnum):
    """What the owner sees of each camera."""

    STARTING = "starting"
    ONLINE = "online"
    RECONNECTING = "reconnecting"
    AUTH_FAILED = "auth failed"
    UNREACHABLE = "unreachable"
    STOPPED = "stopped"


class CameraUnavailable(PorchlightError):
    """A camera could not be opened; `state` says whether to fix credentials or the network."""

    def __init__(self, message: str, state: CameraState) -> None:
        super().__init__(message)
        self.state = state


class CameraSource(Protocol):
    """What a camera source plugin provides for one configured camera."""

    Config: ClassVar[type[BaseModel]]

    def open_record(self) -> av.container.InputContainer:
        """Open the stream to record (blocking; called from the camera's worker thread)."""

    def open_analysis(self) -> av.container.InputContainer | None:
        """Open a smaller stream to analyse, or None to analyse the recorded one."""

    def close(self) -> None:
        """Release what the source holds (threads, pipes, sessions)."""


_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)


def redact_url(text: str) -> str:
    """Remove user:password@ from every URL in a text (FFmpeg puts URLs in its errors)."""
    return _USERINFO.sub(lambda m: m["scheme"] + "***@", text)


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """Split rtsp://user:pass@host/path into (url without credentials, user, password)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None, None
    # The host and port exactly as written: a bad port is the URL check's to report.
    netloc = parts.netloc.rpartition("@")[2]
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, parts.username, parts.password


def with_credentials(url: str, user: str | None, password: str | None) -> str:
    """Put credentials into an RTSP URL for FFmpeg (never logged: see redact_url)."""
    if not user:
        return url
    from urllib.parse import quote

    parts = urlsplit(url)
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit((parts.scheme, f"{auth}@{parts.netloc}", parts.path, parts.query,
                       parts.fragment))


def classify_open_error(err: Exception, what: str) -> CameraUnavailable:
    """Turn an FFmpeg/OS failure to open a stream into a state and a message saying what to do."""
    text = redact_url(str(err))
    if isinstance(err, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError | PermissionError):
        return CameraUnavailable(
            f"{what}: the camera refused the credentials ({text}); fix the user or password",
            CameraState.AUTH_FAILED)
    if isinstance(err, av.error.HTTPNotFoundError):
        return CameraUnavailable(f"{what}: no such stream on the camera ({text}); check the path",
                                 CameraState.UNREACHABLE)
    unresolved = _unresolved_host(err)
    if unresolved is not None:
        host, why = unresolved
        return CameraUnavailable(
            f"{what}: the camera's host {host} cannot be resolved ({why}); check the name in "
            "its URL, or use its IP address", CameraState.UNREACHABLE)
    return CameraUnavailable(f"{what}: cannot reach the camera ({text})", CameraState.UNREACHABLE)


def _unresolved_host(err: Exception) -> tuple[str, str] | None:
    """Return the stream's host and why, if the failure was that its name does not resolve.

    FFmpeg reports a name that does not resolve as a bare `Input/output error`; the name is
    only in its log. So look the name up again, on this failure path only.
    """
    url = getattr(err, "filename", None)
    if not isinstance(url, str) or "://" not in url:
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
        return None  # an address needs no resolving
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as lookup:
        return host, lookup.strerror or str(lookup)
    except (OSError, UnicodeError):
        return None
    return None


def build_source(entry: CameraEntry, types: dict[str, Any], data_dir: Path) -> CameraSource:
    """Validate a camera's config with its source plugin's model and build the source."""
    try:
        source_type = types[entry.type]
    except KeyError:
        known = ", ".join(sorted(types)) or "none installed"
        raise ConfigError(f"camera {entry.name}: unknown type {entry.type!r} (known: {known})") from None
    fields = entry.model_dump(exclude=set(CameraEntry.HUB_KEYS))
    try:
        config = source_type.Config.model_validate(fields)
    except ValidationError as err:
        raise ConfigError(describe(err, f"camera {entry.name}")) from err
    return source_type(config, data_dir)
