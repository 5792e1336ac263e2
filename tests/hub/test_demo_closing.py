"""The demo's last lines say where its data went and what to try next, with commands that exist."""

from __future__ import annotations

import shlex
from pathlib import Path

from hub.cli.main import build_parser
from hub.demo import closing_lines


def _commands(lines: list[str]) -> list[list[str]]:
    found = []
    for line in lines:
        for part in line.split("`")[1::2] or [line]:
            if part.strip().startswith("porchlight "):
                found.append(shlex.split(part.strip())[1:])
    return found


def test_a_kept_demo_says_where_its_data_is_and_how_to_look_inside(tmp_path):
    base = tmp_path / "demo"

    lines = closing_lines(base, kept=True, passphrase="s3cret-phrase")

    assert lines[0] == f"stopped every process; kept everything in {base}"
    text = "\n".join(lines)
    assert "http://127.0.0.1:8470/" in text and "s3cret-phrase" in text
    commands = _commands(lines)
    assert [words[:2] for words in commands] == [
        ["footage", "list"], ["events", "list"], ["run", "--data"], ["gateway", "run"]]
    for words in commands:
        args = build_parser().parse_args(words)  # each one is a real command line
        assert Path(args.data).is_relative_to(base)


def test_a_removed_demo_says_how_to_keep_it_next_time(tmp_path):
    lines = closing_lines(tmp_path / "demo", kept=False)

    assert lines[0] == "stopped every process and removed the demo's data"
    commands = _commands(lines)
    assert commands == [["demo", "--keep", "DIR"], ["init", "--data", "DIR"]]
    for words in commands:
        build_parser().parse_args(words)
