"""`porchlight agency init|request|announce|status|fetch`: thin wiring to the agency tool."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.cli.common import (
    Parser,
    print_json,
    required_data,
    run_async,
    window,
)
from hub.errors import UsageError
from hub.words import plural


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    agency = sub.add_parser("agency", help="the agency's tool")
    agsub = agency.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = agsub.add_parser("init", help="create the agency's keys and its public card agency.json")
    required_data(p, "the agency's data dir")
    p.add_argument("--name", required=True)
    p = agsub.add_parser("request", help="sign and submit a request; prints its id last")
    required_data(p, "the agency's data dir")
    p.add_argument("--gateway", required=True, metavar="URL")
    p.add_argument("--case", required=True)
    p.add_argument("--reason", required=True)
    p.add_argument("--from", dest="start", required=True, help="ISO 8601 time")
    p.add_argument("--to", dest="end", required=True, help="ISO 8601 time")
    p.add_argument("--lat", required=True, type=float)
    p.add_argument("--lon", required=True, type=float)
    p.add_argument("--radius-m", required=True, type=float)
    p.add_argument("--legal-basis", choices=["voluntary", "warrant"], default="voluntary")
    p.add_argument("--warrant", type=Path, help="the warrant (its SHA-256 goes in the request)")
    p = agsub.add_parser("announce", help="post a verified law-enforcement announcement")
    required_data(p, "the agency's data dir")
    p.add_argument("--gateway", required=True, metavar="URL")
    p.add_argument("--text", required=True)
    p.add_argument("--category", required=True,
                   help="crime, safety, suspicious, unknown visitor, lost pet or neighbourly")
    p.add_argument("--lat", type=float)
    p.add_argument("--lon", type=float)
    p.add_argument("--radius-m", type=float, help="with --lat/--lon: only hubs around it")
    for name, text in (("status", "counts of answers to a request"),
                       ("fetch", "download, check and decrypt the approved clips")):
        p = agsub.add_parser(name, help=text)
        required_data(p, "the agency's data dir")
        p.add_argument("--gateway", required=True, metavar="URL")
        p.add_argument("id")
        if name == "fetch":
            p.add_argument("--out", required=True, type=Path)


def cmd_agency_init(args) -> int:
    from federation.agency.tool import init_agency

    card = init_agency(args.data, args.name)
    print(f"created agency {card['name']!r}; give {args.data / 'agency.json'} to the registry "
          "authority")
    return 0


def cmd_agency_request(args) -> int:
    from federation.agency.tool import agency_request

    start, end = window(args)
    request_id = run_async(agency_request(
        args.data, args.gateway, case=args.case, reason=args.reason, start=start, end=end,
        lat=args.lat, lon=args.lon, radius_m=args.radius_m, legal_basis=args.legal_basis,
        warrant_file=args.warrant))
    print("submitted; it is in the public log and routed to the hubs in the circle")
    print(request_id)
    return 0


def cmd_agency_announce(args) -> int:
    from federation.agency.tool import agency_announce
    from hub.neighbourhood.alerts import parse_category

    area = (args.lat, args.lon, args.radius_m)
    if any(v is not None for v in area) and not all(v is not None for v in area):
        raise UsageError("--lat, --lon and --radius-m go together")
    announcement = run_async(agency_announce(args.data, args.gateway, text=args.text,
                                        category=parse_category(args.category), lat=args.lat,
                                        lon=args.lon, radius_m=args.radius_m))
    print(f"announced {announcement}")
    return 0


def cmd_agency_status(args) -> int:
    from federation.agency.tool import agency_status

    print_json(run_async(agency_status(args.data, args.gateway, args.id)))
    return 0


def cmd_agency_fetch(args) -> int:
    from federation.agency.tool import agency_fetch

    manifest = run_async(agency_fetch(args.data, args.gateway, args.id, args.out))
    clips = manifest.get("clips", [])
    print(f"fetched {plural(len(clips), 'clip')} into {args.out}; chain of custody in "
          f"{args.out / 'manifest.json'}")
    return 0
