"""`porchlight service install`: a unit systemd accepts, hardened line by line, or one error line."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import PorchlightError
from hub.systemd import DEFAULT_UNIT, ServiceUnit, check_unit_path

# The real script pip installed beside this Python: what ExecStart must name.
PROGRAM = Path(sys.executable).parent / "porchlight"

# Each line the unit must hold, exactly (the sandbox of docs/install-pi.md).
HARDENING = {
    "Type": ["exec"],
    "User": ["porchlight"],
    "Group": ["porchlight"],
    "Restart": ["on-failure"],
    "UMask": ["0077"],
    "ProtectSystem": ["strict"],
    "ProtectHome": ["yes"],
    "PrivateTmp": ["yes"],
    "PrivateDevices": ["yes"],
    "PrivateMounts": ["yes"],
    "NoNewPrivileges": ["yes"],
    "CapabilityBoundingSet": [""],
    "AmbientCapabilities": [""],
    "ProtectKernelTunables": ["yes"],
    "ProtectKernelModules": ["yes"],
    "ProtectKernelLogs": ["yes"],
    "ProtectControlGroups": ["yes"],
    "ProtectClock": ["yes"],
    "ProtectHostname": ["yes"],
    "ProtectProc": ["invisible"],
    "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX AF_NETLINK"],
    "RestrictNamespaces": ["yes"],
    "RestrictRealtime": ["yes"],
    "RestrictSUIDSGID": ["yes"],
    "LockPersonality": ["yes"],
    "MemoryDenyWriteExecute": ["yes"],
    "RemoveIPC": ["yes"],
    "SystemCallArchitectures": ["native"],
    "SystemCallFilter": ["@system-service", "~@privileged @resources"],
    "SystemCallErrorNumber": ["EPERM"],
}


def install(*args, program: Path = PROGRAM) -> subprocess.CompletedProcess:
    """Run the installed `porchlight service install` in a process of its own."""
    return subprocess.run([str(program), "service", "install", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def settings(unit: str, section: str = "Service") -> dict[str, list[str]]:
    """Return each key of a unit's section with its values, in order."""
    found: dict[str, list[str]] = {}
    current = None
    for line in unit.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif line and not line.startswith("#") and current == section:
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def verify(unit: Path) -> subprocess.CompletedProcess:
    """Run `systemd-analyze verify` on a unit file."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing (Debian's systemd package)")
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def program() -> Path:
    if not PROGRAM.is_file():
        pytest.skip(f"the porchlight script is not installed beside {sys.executable}")
    return PROGRAM


def test_the_unit_passes_systemd_analyze_verify_and_holds_each_hardening_line(
        hub_dir, tmp_path, program):
    out = tmp_path / "porchlight.service"

    done = install("--data", hub_dir, "--listen", "0.0.0.0:8765", "--out", out)

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        f"wrote {out}",
        "to create the user and start the hub now and at every boot, run as root:",
        "  id -u porchlight >/dev/null 2>&1 || useradd --system --user-group "
        f"--home-dir {hub_dir} --no-create-home --shell /usr/sbin/nologin porchlight",
        f"  chown -R porchlight:porchlight {hub_dir}",
        "  systemctl daemon-reload",
        "  systemctl enable --now porchlight.service",
    ]
    unit = out.read_text()
    service = settings(unit)
    for key, values in HARDENING.items():
        assert service.get(key) == values, key
    # Write access to the data dir and nowhere else; the real script, run on that dir.
    assert service["ReadWritePaths"] == [str(hub_dir)]
    assert service["WorkingDirectory"] == [str(hub_dir)]
    assert shlex.split(service["ExecStart"][0]) == [
        str(program.resolve()), "run", "--data", str(hub_dir), "--listen", "0.0.0.0:8765"]
    # Recording needs no passphrase: no setting of the unit names one, in any form.
    assert [line for line in unit.splitlines()
            if "passphrase" in line.lower() and not line.startswith("#")] == []
    assert settings(unit, "Install") == {"WantedBy": ["multi-user.target"]}
    assert out.stat().st_mode & 0o777 == 0o644

    checked = verify(out)

    # systemd-analyze exits 0 on a line it ignores, so its silence is the test.
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


def test_systemd_analyze_catches_a_broken_unit(hub_dir, tmp_path, program):
    """The check above can fail: a mistyped setting and a missing program are both caught."""
    out = tmp_path / "porchlight.service"
    assert install("--data", hub_dir, "--out", out).returncode == 0
    good = out.read_text()
    out.write_text(good.replace("ProtectSystem=strict", "ProtectSystem=strictly"))
    assert "ignoring: strictly" in verify(out).stderr
    out.write_text(good.replace(str(program.resolve()), str(tmp_path / "nowhere" / "porchlight")))
    assert verify(out).returncode != 0


def test_a_port_below_1024_gets_only_the_bind_capability(hub_dir, tmp_path, program):
    out = tmp_path / "porchlight.service"

    assert install("--data", hub_dir, "--listen", "0.0.0.0:443", "--out", out).returncode == 0

    service = settings(out.read_text())
    assert service["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert service["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert (verify(out).returncode, verify(out).stderr) == (0, "")


def test_without_listen_the_config_decides_and_another_user_is_named(hub_dir, tmp_path, program):
    out = tmp_path / "hub-cam.service"

    done = install("--data", hub_dir, "--user", "cams", "--out", out)

    assert done.returncode == 0
    assert done.stdout.splitlines()[-1] == "  systemctl enable --now hub-cam.service"
    service = settings(out.read_text())
    assert shlex.split(service["ExecStart"][0])[1:] == ["run", "--data", str(hub_dir)]
    assert (service["User"], service["Group"]) == (["cams"], ["cams"])


def test_force_replaces_an_existing_unit(hub_dir, tmp_path, program):
    out = tmp_path / "porchlight.service"
    out.write_text("[Service]\nExecStart=/bin/true\n")

    done = install("--data", hub_dir, "--out", out, "--force")

    assert done.returncode == 0
    assert "ProtectSystem=strict" in out.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_the_default_unit_is_systemds_own_folder():
    from hub.cli.main import build_parser

    args = build_parser().parse_args(["service", "install", "--data", "/var/lib/porchlight"])

    assert args.out == DEFAULT_UNIT == Path("/etc/systemd/system/porchlight.service")
    assert args.user == "porchlight"


@pytest.mark.parametrize("case", [
    "relative data", "missing data", "not a hub", "data under /home", "bad user", "bad listen",
    "not a .service", "no folder", "exists", "space in data", "no data",
])
def test_bad_input_is_one_line_and_writes_nothing(case, hub_dir, tmp_path, program):
    out_dir = tmp_path / "units"
    out_dir.mkdir()
    out = out_dir / "porchlight.service"
    plain = tmp_path / "plain"
    plain.mkdir()
    spaced = tmp_path / "my hub"
    args, error = {
        "relative data": (["--data", "hub"],
                          "--data must be an absolute path for a service, got 'hub'"),
        "missing data": (["--data", tmp_path / "gone"],
                         f"no hub at {tmp_path / 'gone'}: create one with "
                         f"`porchlight init --data {tmp_path / 'gone'}`"),
        "not a hub": (["--data", plain],
                      f"{plain} is not a Porchlight hub data dir (no porchlight-hub file)"),
        "data under /home": (["--data", "/home/pi/porchlight"],
                             "--data /home/pi/porchlight is under /home, which the service's "
                             "user cannot reach; use a path outside home folders, such as "
                             "/var/lib/porchlight for the data or /opt/porchlight for the "
                             "program"),
        "bad user": (["--data", hub_dir, "--user", "Root Admin"],
                     "--user must be a system user name (lower-case letters, digits, _ and -, "
                     "at most 31), got 'Root Admin'"),
        "bad listen": (["--data", hub_dir, "--listen", "8765"],
                       "--listen must be HOST:PORT (example: 127.0.0.1:8765), got '8765'"),
        "not a .service": (["--data", hub_dir, "--out", out_dir / "porchlight.conf"],
                           f"--out must name a file ending in .service, got "
                           f"'{out_dir / 'porchlight.conf'}'"),
        "no folder": (["--data", hub_dir, "--out", out_dir / "nope" / "porchlight.service"],
                      f"the folder of {out_dir / 'nope' / 'porchlight.service'} does not exist"),
        "exists": (["--data", hub_dir], f"{out} exists; --force to replace it"),
        "space in data": (["--data", spaced],
                          f"--data '{spaced}' holds a character a unit file would need to "
                          "escape; choose a path of letters, digits and ._-/+@:=,"),
        "no data": ([], "`porchlight service install` needs --data DIR"),
    }[case]
    if case == "exists":
        out.write_text("kept\n")
    if "--out" not in args:
        args = [*args, "--out", out]

    done = install(*args)

    exit_code = 2 if case in ("no data", "bad listen") else 1
    assert (done.returncode, done.stdout, done.stderr) == (
        exit_code, "", f"porchlight: error: {error}\n")
    written = sorted(p.name for p in out_dir.rglob("*"))
    assert written == (["porchlight.service"] if case == "exists" else [])
    if case == "exists":
        assert out.read_text() == "kept\n"


@given(st.text(st.characters(codec="utf-8"), max_size=60))
def test_any_accepted_data_dir_stands_in_the_unit_as_one_word(text):
    """A path check is a parser of outside input: accepted paths split back to themselves."""
    path = Path("/" + text)
    try:
        check_unit_path(path, "--data")
    except PorchlightError as err:
        assert "\n" not in str(err)
        return
    unit = ServiceUnit(program=Path("/opt/porchlight/bin/porchlight"), data=path).render()
    service = settings(unit)
    assert shlex.split(service["ExecStart"][0]) == [
        "/opt/porchlight/bin/porchlight", "run", "--data", str(path)]
    assert service["ReadWritePaths"] == [str(path)]
    assert not any(c in str(path) for c in " \t\n\"'\\%$;")
