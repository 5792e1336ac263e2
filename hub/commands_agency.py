"""The `registry`, `agency` and `log` commands: thin wiring to the federation's tools."""

from __future__ import annotations

import asyncio
import json

from .cli import print_json, window
from .errors import UsageError


def _run(coroutine):
    return asyncio.run(coroutine)


def cmd_registry_init(args) -> int:
    from federation.registry_authority import init_authority

    fingerprint = init_authority(args.data, args.name)
    print(f"created registry authority {args.name!r} in {args.data}")
    print(f"authority key fingerprint (neighbours pin it with --registry-key): {fingerprint}")
    return 0


def cmd_registry_add(args) -> int:
    from federation.registry_authority import add_agency

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
    from federation.registry_authority import remove_agency

    entry = remove_agency(args.data, args.kid)
    print(f"delisted {entry.get('name', args.kid)} from the next registry version")
    return 0


def cmd_registry_sign(args) -> int:
    from federation.registry_authority import sign_registry

    print(sign_registry(args.data, audience=args.audience))
    return 0


def cmd_registry_publish(args) -> int:
    from federation.registry_authority import publish_registry

    answer = _run(publish_registry(args.data, args.gateway))
    print(f"published registry version {answer['version']} (log index {answer['log_index']})")
    return 0


def cmd_registry_show(args) -> int:
    from federation.registry_authority import show_registry

    print_json(show_registry(args.data))
    return 0


def cmd_agency_init(args) -> int:
    from federation.agency import init_agency

    card = init_agency(args.data, args.name)
    print(f"created agency {card['name']!r}; give {args.data / 'agency.json'} to the registry "
          "authority")
    return 0


def cmd_agency_request(args) -> int:
    from federation.agency import agency_request

    start, end = window(args)
    request_id = _run(agency_request(
        args.data, args.gateway, case=args.case, reason=args.reason, start=start, end=end,
        lat=args.lat, lon=args.lon, radius_m=args.radius_m, legal_basis=args.legal_basis,
        warrant_file=args.warrant))
    print("submitted; it is in the public log and routed to the hubs in the circle")
    print(request_id)
    return 0


def cmd_agency_announce(args) -> int:
    from federation.agency import agency_announce

    from .alerts import parse_category

    area = (args.lat, args.lon, args.radius_m)
    if any(v is not None for v in area) and not all(v is not None for v in area):
        raise UsageError("--lat, --lon and --radius-m go together")
    announcement = _run(agency_announce(args.data, args.gateway, text=args.text,
                                        category=parse_category(args.category), lat=args.lat,
                                        lon=args.lon, radius_m=args.radius_m))
    print(f"announced {announcement}")
    return 0


def cmd_agency_status(args) -> int:
    from federation.agency import agency_status

    print_json(_run(agency_status(args.data, args.gateway, args.id)))
    return 0


def cmd_agency_fetch(args) -> int:
    from federation.agency import agency_fetch

    manifest = _run(agency_fetch(args.data, args.gateway, args.id, args.out))
    clips = manifest.get("clips", [])
    print(f"fetched {len(clips)} clips into {args.out}; chain of custody in "
          f"{args.out / 'manifest.json'}")
    return 0


def cmd_log_verify(args) -> int:
    from federation.log_verify import log_verify

    from .datadir import default_data_dir

    state = (args.data or default_data_dir()) / "log-state"
    report = _run(log_verify(args.gateway, state, authority_kid=args.registry_key))
    summary = {"gateway": report.gateway_url, "size": report.size,
               "previous_size": report.previous_size, "counts": report.counts,
               "proofs_checked": report.proofs_checked,
               "problems": [getattr(p, "__dict__", str(p)) for p in report.problems]}
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(f"log of {report.gateway_url}: {report.size} entries "
              f"({', '.join(f'{v} {k}s' for k, v in report.counts.items())}), "
              f"{report.proofs_checked} proofs checked")
        for problem in report.problems:
            print(f"  problem: {problem}")
        print("consistent with the last checkpoint seen" if report.ok else "NOT OK")
    return 0 if report.ok else 1


COMMANDS = {name[4:]: fn for name, fn in globals().items() if name.startswith("cmd_")}
