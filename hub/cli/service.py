"""`porchlight init` and `porchlight run`: create a hub and run it."""

from __future__ import annotations

import argparse

from hub.cli.common import (
    data_arg,
    passphrase_arg,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    p = sub.add_parser("init", help="create a hub")
    data_arg(p)
    p.add_argument("--name", help="the hub's name (default: this machine's host name)")
    p.add_argument("--location", help="LAT,LON; stays on the hub, only a coarse cell is shared")
    passphrase_arg(p)
    p = sub.add_parser("run", help="run the hub service")
    data_arg(p)
    p.add_argument("--listen", help="HOST:PORT for the web service (default 127.0.0.1:8765)")
    p.add_argument("--http", action="store_true",
                   help="serve plain HTTP instead of HTTPS (only on 127.0.0.1)")


def cmd_init(args) -> int:
    from hub.household import check_new_passphrase, read_passphrase
    from hub.init import create_hub, parse_location

    location = parse_location(args.location) if args.location else None
    passphrase = read_passphrase(args.passphrase_file, confirm=True, check=check_new_passphrase)
    data = create_hub(args.data, passphrase, name=args.name, location=location)
    print(f"created hub in {data.root}")
    print(f"household recipient: {data.recipient.read_text().strip()}")
    return 0


def cmd_run(args) -> int:
    from hub.service import run_hub

    run_hub(args.data, args.listen, http=args.http)
    return 0
