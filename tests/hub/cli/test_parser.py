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


KID = "-Xb3" + "q" * 39  # a key id (base64url, 43 characters) that begins with "-"


def test_an_id_that_begins_with_a_dash_is_a_value_not_an_option():
    """A kid or request id begins with "-" once in 32: `--audience KID` and `requests show ID`
    must take it, and a mistyped option must still be refused as one."""
    parser = main.build_parser()
    args = parser.parse_args(["registry", "sign", "--data", "d", "--audience", KID])
    assert args.audience == KID
    assert parser.parse_args(["requests", "show", "--data", "d", "-" + KID]).id == "-" + KID
    assert parser.parse_args(["gateway", "block", "--data", "d", KID]).kid == KID


def test_a_mistyped_option_is_still_refused(capsys):
    import pytest

    with pytest.raises(SystemExit) as exited:
        main.build_parser().parse_args(["requests", "list", "--data", "d", "--jsno"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --jsno" in capsys.readouterr().err
