"""`porchlight service install`: write the systemd unit that runs the hub at boot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub.cli.common import Parser, required_data


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    from hub.systemd import DEFAULT_UNIT, DEFAULT_USER

    service = sub.add_parser("service", help="run the hub as a system service (systemd)")
    ssub = service.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = ssub.add_parser("install", help="write a hardened systemd unit for `porchlight run` and "
                                        "print the commands that enable it")
    required_data(p, "the hub's data dir, an absolute path")
    p.add_argument("--user", default=DEFAULT_USER,
                   help=f"the system user the hub runs as (default {DEFAULT_USER})")
    p.add_argument("--listen", help="HOST:PORT for the web UI (default: [web] listen in "
                                    "config.toml); 0.0.0.0:8765 to reach it from a phone")
    p.add_argument("--out", type=Path, default=DEFAULT_UNIT, metavar="FILE",
                   help=f"where to write the unit (default {DEFAULT_UNIT})")
    p.add_argument("--force", action="store_true", help="replace an existing unit file")


def cmd_service_install(args) -> int:
    from hub.datadir import DataDir
    from hub.systemd import (
        ServiceUnit,
        check_listen,
        check_unit_file,
        check_unit_path,
        check_user,
        installed_program,
        setup_commands,
        write_unit,
    )

    data = check_unit_path(args.data, "--data")
    DataDir(data).require()
    unit = ServiceUnit(
        program=check_unit_path(installed_program(sys.argv[0], sys.executable),
                                "the porchlight program"),
        data=data,
        user=check_user(args.user),
        listen=check_listen(args.listen) if args.listen is not None else None,
    )
    out = check_unit_file(args.out, args.force)
    write_unit(out, unit.render())
    print(f"wrote {out}")
    print("to create the user and start the hub now and at every boot, run as root:")
    for command in setup_commands(unit, out):
        print(f"  {command}")
    return 0
