"""The container (Containerfile, compose.yaml): checked as written always, built and run when an
engine with its base image is at hand (docs/install-nas.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[1]
BASE = "docker.io/library/python:3.11-slim-bookworm"
# Where the registry is out of reach, a local image standing in for BASE (Debian bookworm with
# Python 3.11 and pip in /usr/local) builds the same Containerfile through its PYTHON_IMAGE arg.
BUILD_BASE = os.environ.get("PORCHLIGHT_TEST_PYTHON_IMAGE", BASE)
PASSPHRASE = "container test passphrase"
ENGINE_TIMEOUT_S = 30
BUILD_TIMEOUT_S = 1800
START_DEADLINE_S = 180.0  # a generous deadline for the hub to answer, not a speed test


def parse_containerfile() -> DockerfileParser:
    """Parse the Containerfile with its ARG defaults substituted."""
    parser = DockerfileParser(path=tempfile.mkdtemp(prefix="porchlight-containerfile-"))
    parser.content = (ROOT / "Containerfile").read_text()
    return parser


def final_stage(parser: DockerfileParser) -> list[dict]:
    """Return the instructions of the last stage (what the image is)."""
    starts = [i for i, step in enumerate(parser.structure) if step["instruction"] == "FROM"]
    return [step for step in parser.structure[starts[-1]:] if step["instruction"] != "COMMENT"]


def values(stage: list[dict], instruction: str) -> list[str]:
    return [step["value"] for step in stage if step["instruction"] == instruction]


def test_the_containerfile_is_a_slim_debian_python_311_image_run_as_a_user_with_a_volume():
    parser = parse_containerfile()
    stage = final_stage(parser)

    # Every stage starts from Debian slim's Python 3.11, named in full (Podman asks otherwise).
    assert parser.parent_images == [BASE, BASE]
    assert parser.baseimage == BASE
    # A user of its own, never root, from the user switch to the end.
    users = values(stage, "USER")
    assert users == ["porchlight"]
    assert stage.index(next(s for s in stage if s["instruction"] == "USER")) < stage.index(
        next(s for s in stage if s["instruction"] == "ENTRYPOINT"))
    assert "useradd --system --uid 10001" in " ".join(values(stage, "RUN"))
    # The data dir is a volume, and the hub one level inside it (init renames it into place).
    assert [json.loads(v) for v in values(stage, "VOLUME")] == [["/data"]]
    assert parser.envs["PORCHLIGHT_DATA"] == "/data/hub"
    # `porchlight run` on every address, HTTPS (no --http).
    assert json.loads(values(stage, "ENTRYPOINT")[0]) == ["porchlight"]
    assert json.loads(values(stage, "CMD")[0]) == ["run", "--listen", "0.0.0.0:8765"]
    assert values(stage, "EXPOSE") == ["8765 8766"]


def test_the_containerfile_has_no_architecture_specific_step():
    text = (ROOT / "Containerfile").read_text()
    steps = [s for s in parse_containerfile().structure if s["instruction"] != "COMMENT"]

    for step in steps:
        assert not re.search(r"amd64|x86_64|aarch64|arm64|armhf|--platform|TARGETARCH",
                             step["value"]), step["content"]
    assert "apt-get" not in text  # nothing from the distribution: the wheels carry FFmpeg


def test_the_containerfile_copies_every_package_the_project_installs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copies = [v.split() for v in values(parse_containerfile().structure, "COPY")]
    copied = {source for parts in copies if not parts[0].startswith("--from")
              for source in parts[:-1]}

    assert copied == packages | {"pyproject.toml", "README.md"}
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore  # .venv and the tests stay out of the build context
    assert {f"!{p}/" for p in packages} <= set(ignore)


def test_the_compose_example_uses_the_host_network_a_volume_and_restarts():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    hub = compose["services"]["porchlight"]

    assert hub["network_mode"] == "host"  # mDNS and cameras on the LAN
    assert hub["volumes"] == ["porchlight-data:/data"]
    assert "porchlight-data" in compose["volumes"]
    assert hub["restart"] == "unless-stopped"
    assert hub["command"] == ["run", "--listen", "0.0.0.0:8765"]
    assert (ROOT / hub["build"]["context"] / hub["build"]["dockerfile"]) == ROOT / "Containerfile"
    # `porchlight init` is shown as a one-off run of the same service.
    assert "docker compose run --rm porchlight init" in (ROOT / "compose.yaml").read_text()


def working_engine() -> tuple[str | None, list[str]]:
    """Return the first engine whose daemon answers and that has the base image, and why not."""
    missing = []
    for engine in ("docker", "podman"):
        if shutil.which(engine) is None:
            missing.append(f"{engine}: not installed")
            continue
        info = _engine(engine, "info")
        if info.returncode != 0:
            why = (info.stderr.strip().splitlines() or ["no answer"])[-1]
            missing.append(f"{engine}: no working daemon ({why})")
            continue
        if _engine(engine, "image", "inspect", BUILD_BASE).returncode != 0:
            pulled = _engine(engine, "pull", BUILD_BASE, timeout=600)
            if pulled.returncode != 0:
                why = (pulled.stderr.strip().splitlines() or ["no answer"])[-1]
                missing.append(f"{engine}: base image {BUILD_BASE} absent and not pullable "
                               f"({why})")
                continue
        return engine, missing
    return None, missing


def _engine(engine: str, *args: str, timeout: float = ENGINE_TIMEOUT_S) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([engine, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess([engine, *args], 1, "", f"timed out after {timeout} s")


def test_the_container_builds_initialises_and_serves_healthz():
    """Build the image, `init` a hub in a volume, run it, and ask /healthz from inside."""
    engine, missing = working_engine()
    if engine is None:
        pytest.skip("no working container engine: " + "; ".join(missing))
    tag = f"localhost/porchlight-test:{os.getpid()}"
    volume = f"porchlight-test-{os.getpid()}"
    name = f"porchlight-test-{os.getpid()}"
    try:
        built = _engine(engine, "build", "--build-arg", f"PYTHON_IMAGE={BUILD_BASE}",
                        "-f", str(ROOT / "Containerfile"), "-t", tag, str(ROOT),
                        timeout=BUILD_TIMEOUT_S)
        assert built.returncode == 0, built.stderr[-3000:]
        assert _engine(engine, "volume", "create", volume).returncode == 0
        # No network at all for the hub: it must not send mDNS on this machine's interfaces.
        init = _engine(engine, "run", "--rm", "--network", "none", "-v", f"{volume}:/data",
                       "-e", f"PORCHLIGHT_PASSPHRASE={PASSPHRASE}", tag,
                       "init", "--name", "container-hub", timeout=300)
        assert init.returncode == 0, init.stderr
        assert init.stdout.startswith("created hub in /data/hub\n")
        user = _engine(engine, "run", "--rm", "--network", "none", "--entrypoint", "id", tag, "-u")
        assert user.stdout.strip() == "10001"
        started = _engine(engine, "run", "-d", "--name", name, "--network", "none",
                          "-v", f"{volume}:/data", tag)
        assert started.returncode == 0, started.stderr
        probe = ("import json, ssl, urllib.request; print(urllib.request.urlopen("
                 "'https://127.0.0.1:8765/healthz', context=ssl._create_unverified_context(), "
                 "timeout=5).read().decode())")
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            answer = _engine(engine, "exec", name, "python", "-c", probe)
            if answer.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert answer.returncode == 0, _engine(engine, "logs", name).stderr[-3000:]
        health = json.loads(answer.stdout)
        assert (health["status"], health["hub"]) == ("ok", "container-hub")
        assert _engine(engine, "stop", "-t", "30", name, timeout=60).returncode == 0
        waited = _engine(engine, "inspect", "-f", "{{.State.ExitCode}}", name)
        assert waited.stdout.strip() == "0"  # SIGTERM stops the hub cleanly
    finally:
        _engine(engine, "rm", "-f", name)
        _engine(engine, "volume", "rm", "-f", volume)
        _engine(engine, "rmi", "-f", tag, timeout=120)
