"""What every `porchlight` command shares: the one-line-error parser, common arguments, output."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
from pathlib import Path

from hub.errors import PorchlightError
from hub.timeutil import check_window, parse_time

# A key id, request id or invite is base64url: it may begin with "-" (1 time in 32), and
# argparse would take it for an option. No option of ours has an upper-case letter, a digit or
# "_", or is this long without "=".
_ID_LIKE = re.compile(r"-{1,2}[A-Za-z0-9_-]{14,}")
_NOT_OPTION = re.compile(r"[A-Z0-9_]")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr."""

    def _parse_optional(self, arg_string):  # argparse's hook: None means "a value, not an option"
        if (arg_string not in self._option_string_actions and _ID_LIKE.fullmatch(arg_string)
                and _NOT_OPTION.search(arg_string)):
            return None
        return super()._parse_optional(arg_string)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def data_arg(parser: argparse.ArgumentParser) -> None:
    """Add --data, defaulting to $PORCHLIGHT_DATA or the platform data dir."""
    parser.add_argument("--data", type=Path, default=None,
                        help="the hub's data dir (default: $PORCHLIGHT_DATA, else the platform data dir)")


def required_data(parser: argparse.ArgumentParser, what: str) -> None:
    """Add a required --data for a tool's own data dir (before or after the command)."""
    # Checked after parsing, since `porchlight --data DIR COMMAND` gives it to the top parser.
    parser.add_argument("--data", type=Path, default=None, help=f"{what} (required)")
    parser.set_defaults(data_required=True)


def passphrase_arg(parser: argparse.ArgumentParser) -> None:
    """Add --passphrase-file."""
    parser.add_argument("--passphrase-file", type=Path, default=None,
                        help="read the household passphrase from this file "
                             "(else $PORCHLIGHT_PASSPHRASE, else a prompt)")


def window_args(parser: argparse.ArgumentParser, required: bool) -> None:
    """Add --camera, --from and --to."""
    parser.add_argument("--camera", required=required)
    parser.add_argument("--from", dest="start", required=required, help="ISO 8601 time")
    parser.add_argument("--to", dest="end", required=required, help="ISO 8601 time")


def window(args: argparse.Namespace):
    """Parse --from/--to and check their order."""
    start = parse_time(args.start, "--from") if args.start else None
    end = parse_time(args.end, "--to") if args.end else None
    check_window(start, end)
    return start, end


def print_json(value) -> None:
    """Print a value as JSON on stdout."""
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def open_hub(args: argparse.Namespace):
    """Open the hub in --data."""
    from hub.service import Hub

    return Hub(args.data)


# Which commands lock the data dir (docs/data-dir.md): `run` and `footage check` (which
# repairs the vault under a recorder's feet) need the hub to themselves; every command that
# writes holds the write lock while it works. Commands that only read take no lock.
HUB_ALONE = {"run", "footage check"}
WRITES = {"footage import", "footage prune", "footage check", "footage hold", "footage release",
          "alerts post", "camera add", "camera remove", "camera set", "requests approve", "requests deny",
          "requests resume", "join", "witness enable", "passphrase change"}


@contextlib.contextmanager
def data_dir_locks(args: argparse.Namespace):
    """Hold the locks this command needs on its hub's data dir while it runs."""
    from hub.datadir import MARKER
    from hub.lock import HUB_LOCK, WRITE_LOCK, DataDirLock, LockHeld

    name = " ".join(filter(None, (args.command, getattr(args, "action", None))))
    root = getattr(args, "data", None)
    # No hub there: the command itself says so, in its own words.
    if root is None or not (Path(root) / MARKER).is_file() or name not in HUB_ALONE | WRITES:
        yield
        return
    command = f"porchlight {name}"
    with contextlib.ExitStack() as stack:
        if name in HUB_ALONE:
            try:
                stack.enter_context(DataDirLock(root, HUB_LOCK, command))
            except LockHeld as err:
                raise DataDirBusy(f"the hub in {root} is in use ({err.holder}): one hub per data "
                                  "dir; stop it first") from None
        if name in WRITES:
            try:
                stack.enter_context(DataDirLock(root, WRITE_LOCK, command))
            except LockHeld as err:
                raise DataDirBusy(f"another command is writing to {root} ({err.holder}); try "
                                  "again when it is done") from None
        yield


class DataDirBusy(PorchlightError):
    """Another process holds the data dir's lock."""


def run_async(coroutine):
    """Run a coroutine to completion."""
    return asyncio.run(coroutine)
