"""The systemd unit that runs `porchlight run` as a dedicated user in a hardened sandbox."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hub.errors import PorchlightError
from hub.ports import split_listen

DEFAULT_UNIT = Path("/etc/systemd/system/porchlight.service")
DEFAULT_USER = "porchlight"
MAX_PATH = 1024  # characters; a unit line longer than this is a mistake, not a path

# Characters a unit file takes verbatim in ExecStart= and ReadWritePaths=: no space or quote
# (word splitting), no % (specifiers), no $ (variable expansion), no backslash (escapes).
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/+@:=,-]+")
_LISTEN = re.compile(r"[A-Za-z0-9.:\[\]-]{1,300}")
# useradd's and systemd's portable user names (systemd.exec, "User=").
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}")
# A service user cannot reach a data dir or a program inside someone's home (mode 0700 on
# Debian 12 and Raspberry Pi OS), and ProtectHome= hides these trees from the service anyway.
_HOMES = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))


class ServiceUnitError(PorchlightError):
    """The unit cannot be written as asked (a bad path, user or address)."""


@dataclass(frozen=True)
class ServiceUnit:
    """What the unit runs: the `porchlight` program, the data dir, the user and the address."""

    program: Path
    data: Path
    user: str = DEFAULT_USER
    listen: str | None = None

    def render(self) -> str:
        """Return the unit file's text."""
        command = f"{self.program} run --data {self.data}"
        if self.listen is not None:
            command += f" --listen {self.listen}"
        # Only a port below 1024 needs a capability, and then only that one.
        caps = "CAP_NET_BIND_SERVICE" if self.listen and split_listen(self.listen)[1] < 1024 else ""
        return f"""\
# Written by `porchlight service install`; docs/install-pi.md explains each line.
[Unit]
Description=Porchlight home camera hub
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
User={self.user}
Group={self.user}
# Recording needs only the household's public key: no passphrase here, ever.
ExecStart={command}
WorkingDirectory={self.data}
Environment=PYTHONUNBUFFERED=1
Restart=on-failure
RestartSec=5
# The hub stops its services within 5 s of SIGTERM.
TimeoutStopSec=30
UMask=0077

# The sandbox: the whole file system read-only but the data dir.
ProtectSystem=strict
ReadWritePaths={self.data}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
NoNewPrivileges=yes
CapabilityBoundingSet={caps}
AmbientCapabilities={caps}
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
# IPv4 and IPv6 for cameras, the web UI, the gateway and mDNS; AF_NETLINK to list the
# interfaces mDNS announces on; AF_UNIX for the journal.
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
# No memory both writable and executable (tested: the hub records, analyses, redacts faces,
# serves HTTPS and speaks mDNS under the kernel's PR_SET_MDWE, which enforces the same).
MemoryDenyWriteExecute=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
# A call outside the filter fails with EPERM instead of killing the recorder.
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"""


def check_unit_path(value: Path, what: str) -> Path:
    """Check that a path can stand in a unit file as it is; return it."""
    text = str(value)
    if len(text) > MAX_PATH:
        raise ServiceUnitError(f"{what} is longer than {MAX_PATH} characters")
    if not value.is_absolute():
        raise ServiceUnitError(f"{what} must be an absolute path for a service, got {text!r}")
    if not _SAFE_PATH.fullmatch(text) or ".." in value.parts:
        raise ServiceUnitError(f"{what} {text!r} holds a character a unit file would need to "
                               "escape; choose a path of letters, digits and ._-/+@:=,")
    posix = PurePosixPath(text)
    for home in _HOMES:
        if posix == home or home in posix.parents:
            raise ServiceUnitError(f"{what} {text} is under {home}, which the service's user "
                                   "cannot reach; use a path outside home folders, such as "
                                   "/var/lib/porchlight for the data or /opt/porchlight for "
                                   "the program")
    return value


def check_listen(listen: str) -> str:
    """Check a --listen value for the unit's command line; return it."""
    split_listen(listen)
    if not _LISTEN.fullmatch(listen):
        raise ServiceUnitError(f"--listen must be HOST:PORT with an IP address or a host name, "
                               f"got {listen[:80]!r}")
    return listen


def check_user(name: str) -> str:
    """Check a service user's name; return it."""
    if not _USER_NAME.fullmatch(name):
        raise ServiceUnitError(f"--user must be a system user name (lower-case letters, digits, "
                               f"_ and -, at most 31), got {name[:40]!r}")
    return name


def check_unit_file(path: Path, force: bool) -> Path:
    """Check where the unit goes: a .service name, an existing folder, no unit replaced unasked."""
    if path.suffix != ".service" or path.stem in ("", "."):
        raise ServiceUnitError(f"--out must name a file ending in .service, got {str(path)!r}")
    if not path.parent.is_dir():
        raise ServiceUnitError(f"the folder of {path} does not exist")
    if path.exists() and not force:
        raise ServiceUnitError(f"{path} exists; --force to replace it")
    return path


def write_unit(path: Path, text: str) -> None:
    """Write the unit file whole (mode 0644), or not at all."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as err:
        raise ServiceUnitError(f"cannot write {path}: {err.strerror} (run as root, or "
                               "--out FILE elsewhere)") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # whatever the umask: systemd and readers need to read it
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def setup_commands(unit: ServiceUnit, path: Path) -> list[str]:
    """Return the commands that create the user and start the unit, for root to run."""
    return [
        f"id -u {unit.user} >/dev/null 2>&1 || useradd --system --user-group "
        f"--home-dir {unit.data} --no-create-home --shell /usr/sbin/nologin {unit.user}",
        f"chown -R {unit.user}:{unit.user} {unit.data}",
        "systemctl daemon-reload",
        f"systemctl enable --now {path.name}",
    ]


def installed_program(argv0: str, executable: str) -> Path:
    """Find the absolute path of the `porchlight` script that is running (or beside Python)."""
    candidates = [Path(argv0), Path(executable).parent / "porchlight"]
    found = shutil.which("porchlight")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.name == "porchlight" and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    raise ServiceUnitError("cannot find the installed `porchlight` program: install Porchlight "
                           "with pip (in a virtualenv outside home folders) first")
