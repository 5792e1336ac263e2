"""A gateway's settings: one TOML file in its data directory, validated strictly."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from federation.errors import ScopeError
from federation.gateway.errors import GatewayError
from federation.schemas import DAY, HOUR, MAX_ATTACHMENT_BYTES, Kid
from federation.scope import DEFAULT_LIMITS, ScopeLimits
from federation.tlog.cosignature import CosignatureError, CosignatureVerifier

SETTINGS_FILE = "gateway.toml"
MAX_WITNESSES = 16


def _origin(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("must be a bare origin like https://gateway.example.org (no path)")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _vkey(value: str) -> str:
    try:
        CosignatureVerifier.from_string(value)
    except CosignatureError as err:
        raise ValueError(err.message) from err
    return value


def _witness_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment or parts.username:
        raise ValueError("must be a plain URL (no query, fragment or user)")
    return value.rstrip("/")


class WitnessSetting(BaseModel):
    """A witness the gateway asks to cosign each checkpoint (C2SP tlog-witness)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The witness's base URL: the gateway POSTs to <url>/add-checkpoint.
    url: Annotated[str, Field(max_length=2000), AfterValidator(_witness_url)]
    # Its C2SP vkey (name+keyid+base64 key): cosignatures are checked before they are served.
    vkey: Annotated[str, Field(max_length=1000), AfterValidator(_vkey)]

    def verifier(self) -> CosignatureVerifier:
        """Return the witness's cosignature verifier."""
        return CosignatureVerifier.from_string(self.vkey)


class GatewaySettings(BaseModel):
    """What an operator may tune; every default is the documented one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    # The URL hubs use to reach this gateway; hop signatures must name it exactly. Defaults
    # to http://HOST:PORT of the listening socket, which is right only without a proxy.
    public_url: Annotated[str, AfterValidator(_origin)] | None = None
    registry_key: Kid | None = None
    # H3 grid rings around the alert's resolution-7 cell that receive it. 1 = the cell and
    # its six neighbours: every hub within about one cell edge (~1.2 km) of the author's cell
    # is reached, and none farther than about 5.3 km (docs/protocol.md, "Routing").
    relay_rings: Annotated[int, Field(ge=0, le=3)] = 1
    alert_ttl_s: Annotated[float, Field(ge=60, le=7 * DAY)] = 7 * DAY
    alerts_per_hour: Annotated[int, Field(ge=1, le=1_000_000)] = 30
    requests_per_minute: Annotated[int, Field(ge=1, le=10_000_000)] = 120
    invite_ttl_s: Annotated[float, Field(ge=60, le=90 * DAY)] = 7 * DAY
    hop_max_age_s: Annotated[float, Field(ge=5, le=HOUR)] = 60
    hop_max_future_s: Annotated[float, Field(ge=0, le=300)] = 5
    max_body_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 128 * 1024
    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    # A connection must bring a whole request head this long after it opens and after each
    # answer, or it is closed (idle and slowloris clients). Longer than the 15 s a hub's
    # HTTP client keeps an idle connection, so the hub always closes first.
    idle_timeout_s: Annotated[float, Field(ge=1, le=HOUR)] = 20
    # Open connections one client address (an IPv6 /64) may hold; more are refused with 503.
    max_connections_per_address: Annotated[int, Field(ge=1, le=1_000_000)] = 64
    purge_interval_s: Annotated[float, Field(ge=0.1, le=DAY)] = 60
    check_interval_s: Annotated[float, Field(ge=0.1, le=HOUR)] = 2
    # Agency requests (docs/agency-protocol.md). Scope limits may only tighten DESIGN.md's.
    agency_requests_per_hour: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    scope_min_window_s: Annotated[float, Field(gt=0)] | None = None
    scope_max_window_s: Annotated[float, Field(gt=0)] | None = None
    scope_max_window_age_s: Annotated[float, Field(gt=0)] | None = None
    scope_min_radius_m: Annotated[float, Field(gt=0)] | None = None
    scope_max_radius_m: Annotated[float, Field(gt=0)] | None = None
    scope_max_lifetime_s: Annotated[float, Field(gt=0)] | None = None
    max_clip_bytes: Annotated[int, Field(ge=1024, le=4 * 1024**3)] = 256 * 1024**2
    max_clip_store_bytes: Annotated[int, Field(ge=1024, le=2**50)] = 8 * 1024**3
    clip_ttl_s: Annotated[float, Field(ge=60, le=30 * DAY)] = 7 * DAY
    clip_fetched_grace_s: Annotated[float, Field(ge=0, le=DAY)] = HOUR
    # Agency announcements and alert photos (docs/agency-protocol.md, docs/protocol.md).
    agency_announcements_per_hour: Annotated[int, Field(ge=1, le=1_000_000)] = 10
    max_attachment_bytes: Annotated[int, Field(ge=1024, le=MAX_ATTACHMENT_BYTES)] = 8 * 1024**2
    max_attachment_store_bytes: Annotated[int, Field(ge=1024, le=2**50)] = 2 * 1024**3
    # Witnesses asked to cosign each new checkpoint (docs/witness.md); none by default.
    witnesses: Annotated[list[WitnessSetting], Field(max_length=MAX_WITNESSES)] = []
    # How long one witness may take to answer before the gateway publishes without it.
    witness_timeout_s: Annotated[float, Field(ge=0.1, le=60)] = 5

    @model_validator(mode="after")
    def _scope_only_tighter(self) -> GatewaySettings:
        self.scope_limits()
        return self

    def scope_limits(self) -> ScopeLimits:
        """Return the neighbourhood's request scope: DESIGN.md's defaults, maybe tightened."""
        changes = {
            name.removeprefix("scope_"): value
            for name in type(self).model_fields
            if name.startswith("scope_") and (value := getattr(self, name)) is not None
        }
        try:
            return DEFAULT_LIMITS.tightened(**changes)
        except ScopeError as err:
            raise ValueError(f"scope_{err}") from err


def settings_path(data_dir: str | os.PathLike[str]) -> Path:
    """Return the path of a gateway's settings file."""
    return Path(data_dir) / SETTINGS_FILE


def validate_settings(data: dict[str, Any], *, source: str = "settings") -> GatewaySettings:
    """Validate settings, naming the wrong key and why."""
    try:
        return GatewaySettings.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        detail = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        detail = detail.removeprefix("Value error, ")
        key = ".".join(str(p) for p in first["loc"])
        where = f"{source}: {key}: " if key else f"{source}: "
        raise GatewayError(where + detail, reason="bad_settings") from err


def load_settings(data_dir: str | os.PathLike[str], **overrides: Any) -> GatewaySettings:
    """Read gateway.toml from a data directory and apply overrides."""
    path = settings_path(data_dir)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as err:
        raise GatewayError(
            f"no gateway in {data_dir} ({SETTINGS_FILE} is missing); run gateway init first",
            reason="no_gateway",
        ) from err
    except tomllib.TOMLDecodeError as err:
        raise GatewayError(f"{path}: not valid TOML: {err}", reason="bad_settings") from err
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validate_settings(data, source=str(path))


def render_settings(settings: GatewaySettings) -> str:
    """Render settings as a commented TOML file."""

    def value(v: Any) -> str:
        if isinstance(v, str):
            # JSON string escapes are valid TOML basic-string escapes.
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    lines = [
        "# Porchlight gateway settings (docs/gateway.md explains each one).",
        "# The gateway reads this file when it starts.",
    ]
    for name, field in GatewaySettings.model_fields.items():
        current = getattr(settings, name)
        if name == "witnesses":
            continue  # an array of tables: it must follow every plain key
        if current is None:
            lines.append(f"# {name} = ...")
        elif name == "name" or current != field.default:
            lines.append(f"{name} = {value(current)}")
        else:
            lines.append(f"# {name} = {value(current)}")
    for witness in settings.witnesses:
        lines += ["", "[[witnesses]]", f"url = {value(witness.url)}", f"vkey = {value(witness.vkey)}"]
    return "\n".join(lines) + "\n"
