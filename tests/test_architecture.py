"""The layout is kept by contracts: `lint-imports` passes on the tree, and each contract in
pyproject.toml fails when the import it forbids is added (docs/architecture.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache", str(tree / "pyproject.toml")],
                          cwd=tree, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the three packages and the contracts, to break on purpose."""
    copy = tmp_path_factory.mktemp("tree")
    for package in ("federation", "hub", "plugins"):
        shutil.copytree(ROOT / package, copy / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_tree_keeps_every_contract(tree):
    done = _lint(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 kept, 0 broken" in done.stdout


# (module to change, the import added, the contract that must break)
VIOLATIONS = [
    ("federation/keys.py", "import hub.errors", "plugins -> hub -> federation, never back"),
    ("federation/jws.py", "import federation.gateway.app",
     "federation: the programs import the protocol, never each other"),
    ("federation/gateway/app.py", "import federation.agency.tool",
     "federation: the programs import the protocol, never each other"),
    ("federation/tlog/merkle.py", "import federation.jws",
     "federation: the programs import the protocol, never each other"),
    ("hub/vault/store.py", "import hub.neighbourhood.alerts",
     "hub: rooms in layers, shared pieces at the root"),
    ("hub/neighbourhood/service.py", "import federation.gateway.operator",
     "hub: only the CLI and the demo import the gateway, agency, authority and auditor"),
    ("plugins/cameras/rtsp.py", "import plugins.detectors.motion",
     "plugins: camera sources, detectors, notifiers and integrations are independent rooms"),
    ("plugins/integrations/mqtt.py", "import plugins.notifiers.log",
     "plugins: camera sources, detectors, notifiers and integrations are independent rooms"),
    ("hub/vault/store.py", "import hub.vault.footage",
     "no import cycles: no module, and no room, imports another that imports it back"),
]


@pytest.mark.parametrize(("module", "line", "contract"), VIOLATIONS,
                         ids=[f"{m}:{line.split()[-1]}" for m, line, _ in VIOLATIONS])
def test_each_contract_fails_on_a_forbidden_import(tree, module, line, contract):
    path = tree / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # deliberate violation\n")
    try:
        done = _lint(tree)
    finally:
        path.write_text(original)
    assert done.returncode == 1, done.stdout
    broken = [block for block in done.stdout.split("\n\n") if "BROKEN" in block]
    assert any(" ".join(contract.split()) in " ".join(b.split()) for b in broken), done.stdout
    name = line.split()[-1]  # the report names the offending import, in full or relative
    assert name in done.stdout or "." + name.rsplit(".", 1)[-1] in done.stdout


def test_every_package_says_what_it_is_for_and_what_it_may_import():
    for init in sorted(ROOT.glob("*/**/__init__.py")):
        if init.parts[len(ROOT.parts)] not in ("federation", "hub", "plugins"):
            continue
        text = init.read_text()
        assert text.startswith('"""'), f"{init.relative_to(ROOT)} has no docstring"
        doc = text.split('"""')[1]
        assert "import" in doc.lower(), f"{init.relative_to(ROOT)} does not say what it may import"
