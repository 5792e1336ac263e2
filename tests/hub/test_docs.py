"""Docs stay true: every hook documented, the README's two commands, CI runs the README's test command."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hub.hookspecs

ROOT = Path(__file__).resolve().parents[2]


def test_every_hook_is_documented():
    documented = set(re.findall(r"^## (porchlight_\w+)", (ROOT / "docs" / "plugins.md").read_text(),
                                re.MULTILINE))
    hooks = {name for name in dir(hub.hookspecs) if name.startswith("porchlight_")}
    assert hooks - documented == set(), "hooks missing from docs/plugins.md"
    assert documented - hooks == set(), "docs/plugins.md documents hooks that do not exist"


def test_readme_has_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    head = readme[:2500]
    assert "\n    scripts/demo\n" in head
    assert "\n    scripts/test\n" in head
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
    assert "porchlight demo" in (ROOT / "scripts" / "demo").read_text()


def test_every_cli_command_is_documented():
    from hub.cli.main import build_parser

    text = (ROOT / "docs" / "cli.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        nested = [a for a in command._actions if a.dest == "action"]
        names = [f"{name} {n}" for n in nested[0].choices] if nested else [name]
        for full in names:
            assert f"porchlight {full}" in text, f"`porchlight {full}` missing from docs/cli.md"


def test_hub_never_imports_plugins_by_name():
    for path in (ROOT / "hub").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                assert not node.module.startswith("plugins"), f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("plugins") for a in node.names), path.name


# A markdown link, and a path of the project named in the text ("docs/config.md").
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_PATH = re.compile(r"(?<![\w/.-])((?:docs|hub|federation|plugins|tests|scripts)/[\w./-]*\w)")


def test_every_relative_link_and_path_in_the_docs_resolves():
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        for target in _LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            if not (doc.parent / target.split("#")[0]).exists():
                broken.append(f"{doc.relative_to(ROOT)}: link {target}")
        for target in _PATH.findall(text):
            if not (ROOT / target).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []


def _fields(model, prefix=""):
    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        yield prefix + name
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel) and prefix == "":
            yield from _fields(kind, f"{name}.")


def test_config_md_names_every_config_key():
    from hub.config import CameraEntry, Config
    from plugins.cameras.onvif import OnvifCamera
    from plugins.cameras.rtsp import RtspConfig
    from plugins.cameras.synthetic import SyntheticConfig
    from plugins.detectors.motion import MotionConfig

    text = (ROOT / "docs" / "config.md").read_text()
    sections = {name: body for name, body in re.findall(
        r"^#+ `\[+([\w.]+)\]+`\n(.*?)(?=^#+ |\Z)", text, re.MULTILINE | re.DOTALL)}
    missing = []
    for key in _fields(Config):
        section, _, name = key.rpartition(".")
        if section and f"`{name}`" not in sections.get(section, ""):
            missing.append(key)
    for name in CameraEntry.model_fields:
        if f"`{name}`" not in sections["cameras"]:
            missing.append(f"cameras.{name}")
    for model in (SyntheticConfig, RtspConfig, OnvifCamera.Config):
        missing += [f"cameras.{name}" for name in model.model_fields
                    if f"`{name}`" not in sections["cameras"]]
    missing += [f"cameras.motion.{name}" for name in MotionConfig.model_fields
                if f"`{name}`" not in sections["cameras.motion"]]
    assert missing == []


def test_config_md_example_is_a_config_the_hub_accepts(tmp_path):
    from hub.cameras.sources import build_source
    from hub.config import parse_config
    from hub.plugins import build_plugin_manager, collect_types
    from plugins.detectors.motion import MotionConfig

    text = (ROOT / "docs" / "config.md").read_text()
    example = text.split("An example:\n\n", 1)[1]
    toml = "\n".join(line[4:] for line in example.splitlines() if line.startswith("    ")
                     or not line)
    config = parse_config(toml)
    types = collect_types(build_plugin_manager().hook.porchlight_camera_types(), "camera")
    for camera in config.cameras:
        build_source(camera, types, tmp_path)
        MotionConfig.model_validate(camera.motion or {})


_TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def test_every_test_a_doc_cites_exists():
    """docs/threat-model.md ties each claim to a test: a renamed or removed test breaks the tie."""
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for path, name in _TEST_REF.findall(doc.read_text()):
            source = ROOT / path
            defined = source.exists() and re.search(
                rf"^(?:async )?def {name}\(", source.read_text(), re.MULTILINE)
            if not defined:
                missing.append(f"{doc.relative_to(ROOT)}: {path}::{name}")
    assert missing == []
    assert len(_TEST_REF.findall((ROOT / "docs" / "threat-model.md").read_text())) >= 30
