"""`porchlight events list`."""

from __future__ import annotations

import argparse

from hub.cli.common import (
    Parser,
    data_arg,
    open_hub,
    print_json,
    window,
    window_args,
)
from hub.timeutil import from_iso, iso_second
from hub.words import plural


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    p = sub.add_parser("events", help="camera events").add_subparsers(
        dest="action", required=True, parser_class=Parser).add_parser(
        "list", help="list motion events and the segments they link to")
    data_arg(p)
    window_args(p, required=False)
    p.add_argument("--json", action="store_true")


def cmd_events_list(args) -> int:
    from hub.cameras.events import list_events

    start, end = window(args)
    hub = open_hub(args)
    try:
        if args.camera:
            hub.vault.check_camera(args.camera, [c.name for c in hub.config.cameras])
        events = list_events(hub.vault, args.camera, start, end)
    finally:
        hub.close()
    if args.json:
        print_json(events)
    elif not events:
        print("no events")
    else:
        for e in events:
            print(f"{e['camera']:<16} {iso_second(from_iso(e['start']))} .. "
                  f"{iso_second(from_iso(e['end']))}  zones={','.join(e['zones']) or '-'}  "
                  f"{plural(len(e['segments']), 'segment')}  {e['id']}")
    return 0
