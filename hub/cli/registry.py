"""`porchlight registry init|add|remove|sign|publish|show`: thin wiring to the authority tool."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.cli.common import (
    Parser,
    print_json,
    required_data,
    run_async,
)
from hub.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    registry = sub.add_parser("registry", help="the agency registry (for its authority)")
    regsub = registry.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = regsub.add_parser("init", help="create a registry authority; prints its fingerprint")
    required_data(p, "the authority's data dir")
    p.add_argument("--name", required=True)
    p = regsub.add_parser("add", help="list an agency in the next registry version")
    required_data(p, "the authority's data dir")
    p.add_argument("--card", required=True, type=Path, help="the agency's agency.json")
    p.add_argument("--jurisdiction", required=True,
                   help="LAT,LON,RADIUS_M, or h3:CELL[,CELL...] (resolution 7 or coarser)")
    p.add_argument("--since", required=True, help="YYYY-MM-DD, the partnership's start")
    p.add_argument("--contact", help="how residents reach the agency (optional)")
    p = regsub.add_parser("remove", help="delist an agency from the next version")
    required_data(p, "the authority's data dir")
    p.add_argument("kid")
    p = regsub.add_parser("sign", help="sign the next registry version and print it")
    required_data(p, "the authority's data dir")
    p.add_argument("--audience", required=True, help="the gateway's kid (the neighbourhood id)")
    p = regsub.add_parser("publish", help="sign the next version and upload it to the gateway")
    required_data(p, "the authority's data dir")
    p.add_argument("--gateway", required=True, metavar="URL")
    p = regsub.add_parser("show", help="the authority, its fingerprint and the listed agencies")
    required_data(p, "the authority's data dir")


def cmd_registry_init(args) -> int:
    from federation.authority.tool import init_authority

    fingerprint = init_authority(args.data, args.name)
    print(f"created registry authority {args.name!r} in {args.data}")
    print(f"authority key fingerprint (neighbours pin it with --registry-key): {fingerprint}")
    return 0


def cmd_registry_add(args) -> int:
    from federation.authority.tool import add_agency

    jurisdiction = args.jurisdiction
    if not jurisdiction.startswith("h3:"):
        try:
            lat, lon, radius = (float(v) for v in jurisdiction.split(","))
        except ValueError:
            raise UsageError(f"--jurisdiction: {jurisdiction!r} is not LAT,LON,RADIUS_M or "
                             "h3:CELL[,CELL...]") from None
        jurisdiction = (lat, lon, radius)
    entry = add_agency(args.data, args.card, jurisdiction=jurisdiction, since=args.since,
                       contact=args.contact)
    print(f"listed {entry['name']} ({entry['kid']}) in the next registry version")
    return 0


def cmd_registry_remove(args) -> int:
    from federation.authority.tool import remove_agency

    entry = remove_agency(args.data, args.kid)
    print(f"delisted {entry.get('name', args.kid)} from the next registry version")
    return 0


def cmd_registry_sign(args) -> int:
    from federation.authority.tool import sign_registry

    print(sign_registry(args.data, audience=args.audience))
    return 0


def cmd_registry_publish(args) -> int:
    from federation.authority.tool import publish_registry

    answer = run_async(publish_registry(args.data, args.gateway))
    print(f"published registry version {answer['version']} (log index {answer['log_index']})")
    return 0


def cmd_registry_show(args) -> int:
    from federation.authority.tool import show_registry

    print_json(show_registry(args.data))
    return 0
