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
    for path in (ROOT / "hub").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                assert not node.module.startswith("plugins"), f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("plugins") for a in node.names), path.name
