"""Every command the parser accepts has its handler in its noun's module."""

from __future__ import annotations

import argparse

from hub.cli import main


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))
            return
    yield prefix


def test_every_command_has_a_handler_in_one_noun_module():
    commands = list(_commands(main.build_parser()))
    assert len(commands) >= 42  # every command, each with one handler
    for words in commands:
        handler = "cmd_" + "_".join(words)
        owners = [noun.__name__ for noun in main.NOUNS if hasattr(noun, handler)]
        assert len(owners) == 1, (words, owners)
