"""The hub's config.toml, validated into typed models that reject unknown or mistyped keys."""

from __future__ import annotations

import fcntl
import os
import re
import threading
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import tomlkit
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hub.errors import ConfigError, UsageError
from hub.passphrase_seal import DEFAULT_WORK_FACTOR, MAX_WORK_FACTOR, MIN_WORK_FACTOR

CONFIG_NAME = "config.toml"
CAMERA_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def check_camera_name(name: str) -> None:
    """Refuse a camera name that could not be a directory name in the vault."""
    if not CAMERA_NAME.match(name):
        raise UsageError(
            f"camera name {name!r} is not valid: use 1-32 of a-z, 0-9, '-' and '_', "
            "starting with a letter or digit"
        )


def parse_size(value: Any) -> Any:
    """Turn "200 GB" or "1.5GiB" into bytes; leave integers to the model."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a size (examples: 500000000, \"200 GB\", \"1.5 GiB\")")
        number, unit = match.groups()
        return int(float(number) * _UNITS[(unit or "b").lower()])
    return value


Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]


class Strict(BaseModel):
    """A config section: unknown keys and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SecretRef(Strict):
    """A secret named by reference, never written in the config: {env = "NAME"} or {file = "path"}."""

    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret is {env = \"NAME\"} or {file = \"path\"}, exactly one")
        return self

    def resolve(self, base: Path) -> str:
        """Read the secret from its environment variable or file."""
        if self.env is not None:
            try:
                return os.environ[self.env]
            except KeyError:
                raise ConfigError(f"secret: environment variable {self.env} is not set") from None
        path = base / self.file if not os.path.isabs(self.file) else Path(self.file)
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(f"secret: cannot read {self.file}: {err.strerror}") from err


class Location(Strict):
    """The hub's exact location: it never leaves the hub."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class HubSection(Strict):
    name: str = Field(min_length=1, max_length=64)
    location: Location | None = None


class VaultSection(Strict):
    extra_recipients: list[Annotated[str, Field(pattern=AGE_RECIPIENT.pattern)]] = []
    segment_seconds: float = Field(default=10.0, ge=1.0, le=120.0)
    # log2 of age scrypt's N for every key sealed with a passphrase from now on (the household
    # key at init, each person's, a passphrase backup's): fixed, so opening never depends on load.
    passphrase_work_factor: int = Field(default=DEFAULT_WORK_FACTOR, ge=MIN_WORK_FACTOR,
                                        le=MAX_WORK_FACTOR, strict=True)


class RetentionSection(Strict):
    max_age_days: float | None = Field(default=30.0, gt=0)
    max_bytes: Size | None = None
    min_free_percent: float | None = Field(default=5.0, ge=0, lt=100)
    interval_minutes: float = Field(default=60.0, gt=0)


class WebSection(Strict):
    listen: str = Field(default="127.0.0.1:8765", pattern=r"^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$")
    # HTTPS with the certificate `init` made (keys/web-cert.pem), or the owner's own.
    cert_file: str | None = None
    key_file: str | None = None
    # A signed-in session ends after this long without a request; its keys are wiped.
    idle_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    # A connection must bring a whole request head this long after opening and after each
    # answer (idle and slowloris clients); one address may hold this many connections, more
    # are refused with 503 (raise it behind a reverse proxy). federation/serving.py.
    idle_timeout_s: float = Field(default=20.0, ge=1, le=3600)
    max_connections_per_address: int = Field(default=32, ge=1, le=100_000)

    @model_validator(mode="after")
    def _cert_and_key(self) -> WebSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class LanSection(Strict):
    """Exchanging alerts with hubs on the same LAN, found by mDNS (off unless the owner opts in)."""

    enabled: bool = False
    listen: str = Field(default="0.0.0.0:8766", pattern=r"^[^\s:]+:\d{1,5}$")
    interfaces: list[str] = []
    # How often the gateway checkpoints this hub and its LAN neighbours saw are compared.
    gossip_interval_s: float = Field(default=60.0, ge=0.5, le=86400)
    # Witness the gateway's log (C2SP tlog-witness): POST /add-checkpoint on this LAN server,
    # under the key `porchlight witness enable` prints (docs/witness.md).
    witness: bool = False

    @model_validator(mode="after")
    def _witness_needs_the_lan_server(self) -> LanSection:
        if self.witness and not self.enabled:
            raise ValueError("witness = true serves POST /add-checkpoint on the LAN server: "
                             "it needs enabled = true")
        return self


MAX_TRUSTED_WITNESSES = 32


class WitnessesSection(Strict):
    """Witnesses whose cosignatures an agency request's log checkpoint needs (docs/witness.md)."""

    # C2SP vkeys (name+keyid+base64 key), as `porchlight witness init` prints them.
    keys: list[Annotated[str, Field(max_length=1000)]] = Field(
        default=[], max_length=MAX_TRUSTED_WITNESSES)
    # k: how many of the witnesses this hub trusts must have cosigned: these keys, and with
    # [lan] enabled the witnesses of LAN neighbours. 0 (the default) requires none.
    min: int = Field(default=0, ge=0, le=MAX_TRUSTED_WITNESSES)
    # Whether LAN neighbours' witnesses (pinned on first sight) count toward min; false trusts
    # only the keys above (a LAN where anyone may announce a hub: docs/threat-model.md).
    lan: bool = True

    @model_validator(mode="after")
    def _keys_parse(self) -> WitnessesSection:
        from federation.tlog.cosignature import CosignatureError, CosignatureVerifier

        for key in self.keys:
            try:
                CosignatureVerifier.from_string(key)
            except CosignatureError as err:
                raise ValueError(f"keys: {key[:40]!r}: {err.message}") from err
        return self

    def verifiers(self) -> list[Any]:
        """Return the trusted witnesses' cosignature verifiers."""
        from federation.tlog.cosignature import CosignatureVerifier

        return [CosignatureVerifier.from_string(key) for key in self.keys]


MQTT_TOPIC_PART = r"^[A-Za-z0-9_-]{1,64}$"


class MqttSection(Strict):
    """Home Assistant over MQTT (docs/integrations.md): the broker must be on the LAN."""

    host: str = Field(min_length=1, max_length=253, pattern=r"^[^\s/:@]+$|^[0-9a-fA-F:]+$")
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = Field(default=None, min_length=1, max_length=128)
    password: SecretRef | None = None
    # Home Assistant listens for entities under this prefix (its MQTT integration's setting).
    discovery_prefix: str = Field(default="homeassistant", pattern=MQTT_TOPIC_PART)
    # The hub's own topics: TOPIC_PREFIX/<hub id>/...
    topic_prefix: str = Field(default="porchlight", pattern=MQTT_TOPIC_PART)
    # Motion snapshots on each camera's MQTT camera entity; only sent to a broker whose
    # addresses are all on the LAN (private, loopback or link-local).
    snapshots: bool = Field(default=True, strict=True)
    # Home Assistant may turn recording and analysis on and off per camera. Off (the
    # default), the command topics are not even subscribed.
    switches: bool = Field(default=False, strict=True)
    # TLS to the broker (its port is then usually 8883): the broker's certificate and name are
    # checked against ca_file (PEM, a path in the data dir or absolute) or the system's CAs.
    tls: bool = Field(default=False, strict=True)
    ca_file: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _ca_file_needs_tls(self) -> MqttSection:
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is for a TLS broker: set tls = true too")
        return self

    @model_validator(mode="after")
    def _password_needs_user(self) -> MqttSection:
        if self.password is not None and self.username is None:
            raise ValueError("password needs a username")
        return self


class CameraEntry(BaseModel):
    """The keys every camera has; its source plugin validates the rest by `type`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: Annotated[str, Field(pattern=CAMERA_NAME.pattern)]
    type: str
    mode: Literal["continuous", "motion"] = "continuous"
    pre_roll_s: float = Field(default=5.0, ge=0, le=60)
    post_roll_s: float = Field(default=5.0, ge=0, le=300)
    # Motion analysis (events with a snapshot) runs in both modes unless the owner turns it off.
    analysis: bool = Field(default=True, strict=True)
    # Off: the camera stays connected (live view, analysis) but no segment is kept. Changed
    # while the hub runs, it applies in place, without restarting the camera.
    recording: bool = Field(default=True, strict=True)
    # Detector settings (sensitivity, masks, zones), validated by the detector plugin.
    motion: dict | None = None

    HUB_KEYS: ClassVar[frozenset[str]] = frozenset(
        {"name", "type", "mode", "analysis", "recording", "pre_roll_s", "post_roll_s", "motion"})

    @model_validator(mode="after")
    def _motion_mode_needs_analysis(self) -> CameraEntry:
        if self.mode == "motion" and not self.analysis:
            raise ValueError('mode = "motion" records only around motion, so it needs '
                             "analysis = true")
        return self


# The triggers a notification can have; each can be switched on or off per person (hub/notify/).
NOTIFY_TRIGGERS = ("request", "alert", "motion", "camera", "disk", "fork")
NOTIFIER_NAME = CAMERA_NAME


class NotifySection(Strict):
    """How notifications are made and delivered (docs/integrations.md)."""

    # Links in notifications are paths of the web UI; with this set they become absolute
    # ("https://hub.example.lan:8765"), for targets that open them on a phone.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
                                   max_length=200)
    # At most one motion notification per camera in this many seconds.
    motion_cooldown_s: float = Field(default=300.0, ge=0, le=86400)
    # "Disk nearly full": free space under this percent of the disk, or the vault over this
    # percent of retention.max_bytes. Told once each time it crosses.
    disk_free_percent: float = Field(default=10.0, ge=0, lt=100)
    disk_quota_percent: float = Field(default=90.0, gt=0, le=100)
    # Each target: a failed send is tried again after backoff_s, doubling up to max_backoff_s,
    # at most `attempts` times in all; one send may take timeout_s.
    attempts: int = Field(default=5, ge=1, le=20)
    backoff_s: float = Field(default=2.0, gt=0, le=3600)
    max_backoff_s: float = Field(default=300.0, gt=0, le=86400)
    timeout_s: float = Field(default=15.0, gt=0, le=600)


class NotifierEntry(BaseModel):
    """The keys every notification target has; its notifier plugin validates the rest by `type`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    name: Annotated[str, Field(pattern=NOTIFIER_NAME.pattern)]
    # Whose target it is: their per-person switches apply, and a viewer hears only of the
    # cameras shared with them.
    person: str = Field(default="owner", max_length=32)
    # Narrow the triggers this target hears of (default: all that its person has on).
    triggers: list[Literal[NOTIFY_TRIGGERS]] | None = None  # type: ignore[valid-type]
    # A target on the LAN gets motion snapshots; one on the internet gets them only for the
    # cameras listed in `snapshots`.
    lan: bool = Field(default=False, strict=True)
    snapshots: list[Annotated[str, Field(pattern=CAMERA_NAME.pattern)]] = []

    HUB_KEYS: ClassVar[frozenset[str]] = frozenset(
        {"type", "name", "person", "triggers", "lan", "snapshots"})

    def own_settings(self) -> dict:
        """Return the keys that belong to the notifier plugin (all but the hub's)."""
        return {k: v for k, v in (self.model_extra or {}).items()}


class Config(Strict):
    hub: HubSection
    vault: VaultSection = VaultSection()
    retention: RetentionSection = RetentionSection()
    web: WebSection = WebSection()
    lan: LanSection = LanSection()
    witnesses: WitnessesSection = WitnessesSection()
    cameras: list[CameraEntry] = []
    mqtt: MqttSection | None = None
    notify: NotifySection = NotifySection()
    notifiers: list[NotifierEntry] = []

    @field_validator("cameras", "notifiers")
    @classmethod
    def _unique_names(cls, entries: list, info: ValidationInfo) -> list:
        kind = {"cameras": "camera", "notifiers": "notifier"}[info.field_name]
        seen: set[str] = set()
        for entry in entries:
            if entry.name in seen:
                raise ValueError(f"{kind} {entry.name!r} is defined twice")
            seen.add(entry.name)
        return entries

    @model_validator(mode="after")
    def _enough_witnesses(self) -> Config:
        # LAN neighbours' witnesses count too, so with [lan] on, min may exceed the keys.
        policy = self.witnesses
        if policy.min > len(policy.keys) and not (self.lan.enabled and policy.lan):
            raise ValueError(f"witnesses: min = {policy.min} needs at least {policy.min} keys, "
                             f"there are {len(policy.keys)} (or [lan] enabled, so that LAN "
                             "neighbours' witnesses count)")
        return self


def describe(err: ValidationError, source: str) -> str:
    """Say, in one line, which keys are wrong and why."""
    parts = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"])
        why = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        why = why.removeprefix("Value error, ")
        # A check across sections names its keys itself.
        parts.append(f"{where}: {why}" if where else why)
    return f"{source}: " + "; ".join(parts)


def parse_config(text: str, source: str = CONFIG_NAME) -> Config:
    """Validate config text; raise ConfigError naming the wrong key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML: {err}") from err
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe(err, source)) from err


def load_config(data_dir: Path) -> Config:
    """Read and validate DATA/config.toml."""
    path = data_dir / CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{CONFIG_NAME}: not UTF-8 text") from err
    return parse_config(text)


class ConfigEdit:
    """config.toml opened for one change, with the owner's comments kept, under a lock.

    A CLI command, the web UI and the MQTT bridge all edit config.toml: each reads it, changes
    it and writes it back. An exclusive flock on the data dir itself, held from the read to the
    end of the block, keeps one from writing over another's change (any process, any thread:
    each edit opens the directory anew). The directory, not a lock file: nothing is left behind
    by an edit that is refused. Nothing is written unless save() is called, and save() refuses
    a config the hub would refuse.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / CONFIG_NAME
        self.document: tomlkit.TOMLDocument = tomlkit.document()
        self._fd: int | None = None

    def __enter__(self) -> ConfigEdit:
        self._fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            self.document = tomlkit.parse(self.path.read_text(encoding="utf-8"))
        except BaseException:
            os.close(self._fd)
            raise
        return self

    def save(self) -> Config:
        """Write the changed config (atomically); return it as the hub will read it."""
        text = tomlkit.dumps(self.document)
        config = parse_config(text)  # raises ConfigError naming the wrong key; nothing written
        tmp = self.path.with_name(f".{CONFIG_NAME}.{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        return config

    def __exit__(self, *exc) -> None:
        os.close(self._fd)  # releases the flock


def render_config(name: str, location: tuple[float, float] | None,
                  work_factor: int = DEFAULT_WORK_FACTOR) -> str:
    """Write the config a new hub starts with, commented for the owner."""
    lines = [
        "# Porchlight hub configuration. Unknown keys are rejected.",
        "[hub]",
        f"name = {_toml_string(name)}",
    ]
    if location is not None:
        lines.append("# Exact location: it never leaves this hub; only a coarse H3 cell is shared.")
        lines.append(f"location = {{ lat = {location[0]!r}, lon = {location[1]!r} }}")
    lines += [
        "",
        "[vault]",
        "# Extra age recipients (a second household member, a paper recovery key).",
        "extra_recipients = []",
        "segment_seconds = 10.0",
        "# age scrypt work factor (log2 N) of the keys sealed with a passphrase: each step up",
        "# doubles the time a sign-in or an unlock takes (18 is about 1 s on a laptop).",
        f"passphrase_work_factor = {work_factor}",
        "",
        "[retention]",
        "max_age_days = 30.0",
        "# max_bytes = \"200 GB\"",
        "min_free_percent = 5.0",
        "interval_minutes = 60.0",
        "",
        "[web]",
        "# The web UI, over HTTPS with keys/web-cert.pem (or set cert_file and key_file).",
        'listen = "127.0.0.1:8765"',
        "idle_minutes = 15.0",
        "",
    ]
    return "\n".join(lines)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
