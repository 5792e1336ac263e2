"""The `porchlight` command: the parser, built from one module per noun, and the dispatch."""

from __future__ import annotations

import logging
import sys

from federation.errors import FederationError
from hub.cli import (
    agency,
    alerts,
    camera,
    demo,
    events,
    footage,
    gateway,
    join,
    log,
    registry,
    requests,
    service,
)
from hub.cli.common import Parser, data_dir_locks
from hub.datadir import default_data_dir
from hub.errors import PorchlightError

# In the order `porchlight --help` lists them.
NOUNS = (service, demo, camera, events, join, requests, alerts, gateway, registry, agency, log, footage,)


def build_parser() -> Parser:
    """Build the whole command line."""
    parser = Parser(prog="porchlight", description="Privacy-first home camera hub.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
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
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "run" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "data", "unset") is None:
        args.data = default_data_dir()
    try:
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
