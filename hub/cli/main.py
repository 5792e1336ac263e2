"""The `porchlight` command: the parser, built from one module per noun, and the dispatch."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import signal
import sys
from pathlib import Path

from federation.errors import FederationError
from hub.cli import (
    agency,
    alerts,
    backup,
    camera,
    demo,
    events,
    footage,
    gateway,
    join,
    log,
    passphrase,
    registry,
    requests,
    service,
    system,
    witness,
)
from hub.cli.common import Parser, data_dir_locks
from hub.datadir import default_data_dir
from hub.errors import PorchlightError, UsageError

# In the order `porchlight --help` lists them.
NOUNS = (service, system, demo, camera, events, join, requests, alerts, gateway, registry, agency,
         log, witness, footage, backup, passphrase)


def build_parser() -> Parser:
    """Build the whole command line."""
    parser = Parser(prog="porchlight", description="Privacy-first home camera hub.")
    parser.add_argument("--version", action="version", version=f"porchlight {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    # Its own dest: a subcommand's --data default would overwrite this one's value.
    parser.add_argument("--data", dest="global_data", type=Path, metavar="DIR",
                        help="the data dir, before the command or after it")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for noun in NOUNS:
        noun.register(sub)
    return parser


def dispatch(args) -> int:
    """Run the subcommand named on the command line: cmd_<command>[_<action>] of its noun."""
    name = f"{args.command}_{args.action}" if getattr(args, "action", None) else args.command
    for noun in NOUNS:
        command = getattr(noun, f"cmd_{name}", None)
        if command is not None:
            with data_dir_locks(args):
                return command(args) or 0
    raise AssertionError(f"no command {name}")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; print errors as one line and return the exit status."""
    try:
        try:
            return _run(argv)
        finally:
            # Flush now, not at exit, so that a reader that went away is caught below.
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader closed the pipe (`porchlight footage list | head`): stop quietly, as a
        # tool killed by SIGPIPE would, and send what is left to /dev/null so that the
        # interpreter's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "run" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        _place_data_dir(args)
        return dispatch(args)
    except PorchlightError as err:
        sys.stderr.write(f"porchlight: error: {err}\n")
        return err.exit_code
    except FederationError as err:
        sys.stderr.write(f"porchlight: error: {err.message}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("porchlight: interrupted\n")
        return 130


def _place_data_dir(args) -> None:
    """Take --data from before or after the command; default it where the command allows."""
    given = args.global_data
    name = " ".join(filter(None, (args.command, getattr(args, "action", None))))
    if not hasattr(args, "data"):
        if given is not None:
            raise UsageError(f"`porchlight {name}` takes no --data")
        return
    if given is not None:
        if args.data is not None and args.data != given:
            raise UsageError(f"--data is given twice ({given} and {args.data}); give it once")
        args.data = given
    if args.data is None:
        if getattr(args, "data_required", False):
            raise UsageError(f"`porchlight {name}` needs --data DIR")
        args.data = default_data_dir()


def _version() -> str:
    try:
        return importlib.metadata.version("porchlight")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"
