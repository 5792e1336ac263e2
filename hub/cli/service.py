"""`porchlight init` and `porchlight run`: create a hub and run it."""

from __future__ import annotations

import argparse
import re

from hub.cli.common import (
    data_arg,
    passphrase_arg,
)
from hub.passphrase_seal import DEFAULT_WORK_FACTOR, MAX_WORK_FACTOR, MIN_WORK_FACTOR


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    p = sub.add_parser("init", help="create a hub")
    data_arg(p)
    p.add_argument("--name", help="the hub's name (default: this machine's host name)")
    p.add_argument("--location", help="LAT,LON; stays on the hub, only a coarse cell is shared")
    p.add_argument("--work-factor", type=work_factor, default=DEFAULT_WORK_FACTOR, metavar="N",
                   help="age scrypt work factor (log2 N) of the passphrase-sealed keys, "
                        f"{MIN_WORK_FACTOR}..{MAX_WORK_FACTOR} (default {DEFAULT_WORK_FACTOR}: "
                        "about 1 s per unlock on a laptop; each step down halves it)")
    passphrase_arg(p)
    p = sub.add_parser("run", help="run the hub service")
    data_arg(p)
    p.add_argument("--listen", help="HOST:PORT for the web service (default 127.0.0.1:8765)")
    p.add_argument("--http", action="store_true",
                   help="serve plain HTTP instead of HTTPS (only on 127.0.0.1)")


def work_factor(text: str) -> int:
    """Parse --work-factor: a whole number in the range age's scrypt recipient accepts here."""
    if not re.fullmatch(r"[0-9]{1,2}", text) or not MIN_WORK_FACTOR <= int(text) <= MAX_WORK_FACTOR:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number from {MIN_WORK_FACTOR} to {MAX_WORK_FACTOR}")
    return int(text)


def cmd_init(args) -> int:
    from hub.household import check_new_passphrase, read_passphrase
    from hub.init import create_hub, parse_location

    location = parse_location(args.location) if args.location else None
    passphrase = read_passphrase(args.passphrase_file, confirm=True, check=check_new_passphrase)
    data = create_hub(args.data, passphrase, name=args.name, location=location,
                      work_factor=args.work_factor)
    print(f"created hub in {data.root}")
    print(f"household recipient: {data.recipient.read_text().strip()}")
    return 0


def cmd_run(args) -> int:
    from hub.service import run_hub

    run_hub(args.data, args.listen, http=args.http)
    return 0
