"""`porchlight requests list|show|approve|deny|prove`: the inbox of agency requests."""

from __future__ import annotations

import argparse
import asyncio

from hub.cli.common import (
    Parser,
    data_arg,
    open_hub,
    passphrase_arg,
    print_json,
)
from hub.errors import UsageError
from hub.timeutil import from_iso, iso_second


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    requests = sub.add_parser("requests", help="agency requests for footage")
    rsub = requests.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = rsub.add_parser("list", help="the requests inbox")
    data_arg(p)
    p.add_argument("--all", action="store_true", help="also the requests this hub dropped, and why")
    p.add_argument("--json", action="store_true")
    p = rsub.add_parser("show", help="one request in full")
    data_arg(p)
    p.add_argument("id")
    p = rsub.add_parser("approve", help="seal and send the footage of a request")
    data_arg(p)
    p.add_argument("id")
    p.add_argument("--camera", action="append", default=[],
                   help="a camera to send (repeatable; default: those with footage in the window)")
    p.add_argument("--blur-faces", action="store_true", help="blur faces (re-encodes the clips)")
    passphrase_arg(p)
    p = rsub.add_parser("deny", help="deny a request")
    data_arg(p)
    p.add_argument("id")
    p.add_argument("--silent", action="store_true", help="send no answer at all")
    p = rsub.add_parser("resume", help="show the gateway's new requests again after a fork "
                                       "alarm you have looked at (the proof stays on disk)")
    data_arg(p)
    p = rsub.add_parser("prove", help="prove that this hub's answer to a request is in the log")
    data_arg(p)
    p.add_argument("id")


def cmd_requests_list(args) -> int:
    from hub.neighbourhood.gossip import fork_alarm, fork_evidence
    from hub.neighbourhood.requests import list_requests

    hub = open_hub(args)
    try:
        requests = list_requests(hub, include_dropped=args.all)
        alarm = fork_alarm(hub.db)
        evidence = fork_evidence(hub, alarm) if alarm is not None else None
    finally:
        hub.close()
    if args.json:
        # An object, so that a script reading the inbox meets the fork alarm too.
        print_json({"fork_alarm": _alarm_json(alarm, evidence), "requests": requests})
        return 0
    if alarm is not None:
        print(_alarm_line(alarm))
    if not requests:
        print("no requests")
    else:
        for r in requests:
            window = (f"{iso_second(from_iso(r['start']))} .. {iso_second(from_iso(r['end']))}"
                      if r["start"] and r["end"] else "")
            line = (f"{r['id']}  {r['status']:<15} {r['agency'] or '-'}  case {r['case_number'] or '-'}"
                    f"  {window}")
            print(line + (f"  ({r['detail']})" if r["detail"] else ""))
    return 0


def _alarm_json(alarm: dict | None, evidence: dict | None) -> dict | None:
    if alarm is None:
        return None
    return {"message": _alarm_line(alarm), "gateway": alarm["gateway"], "peer": alarm["peer"],
            "why": alarm["why"], "found": alarm["found"], "proof": alarm["proof"],
            "checkpoints": evidence}


def _alarm_line(alarm: dict) -> str:
    return (f"ALARM: fork: gateway {alarm['gateway'][:12]} showed this hub and LAN neighbour "
            f"{alarm['peer'][:12]} different logs ({alarm['why']}), found {alarm['found']}; "
            f"both signed checkpoints are in {alarm['proof']}; its new requests are withheld "
            "until you run `porchlight requests resume`")


def cmd_requests_resume(args) -> int:
    from hub.neighbourhood.gossip import clear_fork_alarm

    hub = open_hub(args)
    try:
        alarm = clear_fork_alarm(hub)
    finally:
        hub.close()
    if alarm is None:
        print("no fork alarm is raised")
    else:
        print(f"showing new requests again; the proof stays in {alarm['proof']}")
    return 0


def cmd_requests_prove(args) -> int:
    from hub.neighbourhood.requests import prove_answer
    from hub.neighbourhood.service import load_membership

    hub = open_hub(args)
    try:
        membership = load_membership(hub.data)
        if membership is None:
            raise UsageError("this hub is not a member of a gateway")
        proof = prove_answer(hub, args.id, membership.gateway_jwk)
    finally:
        hub.close()
    print_json(proof)
    return 0


def cmd_requests_show(args) -> int:
    from hub.neighbourhood.requests import footage_in_window, get_request

    hub = open_hub(args)
    try:
        request = get_request(hub, args.id)
        if request["start"]:
            from datetime import datetime

            request["footage"] = footage_in_window(hub, datetime.fromisoformat(request["start"]),
                                                   datetime.fromisoformat(request["end"]))
    finally:
        hub.close()
    print_json(request)
    return 0


def _with_gateway(hub, work):
    """Run `work(client, gateway_kid)` against the hub's gateway."""

    from hub.neighbourhood.service import with_gateway_client

    return asyncio.run(with_gateway_client(hub, work))


def cmd_requests_approve(args) -> int:
    from hub.household import unlock_household
    from hub.neighbourhood.requests import approve, get_request

    hub = open_hub(args)
    try:
        request = get_request(hub, args.id)
        if request["status"] != "pending":
            raise UsageError(f"request {args.id} is {request['status']}, not pending")
        identity = unlock_household(hub.data, args.passphrase_file)
        decision = _with_gateway(hub, lambda client, gateway: approve(
            hub, client, gateway, args.id, identity, args.camera or None, args.blur_faces))
    finally:
        hub.close()
    for clip in decision.clips:
        print(f"sent {clip['camera']}: {clip['size']} bytes sealed to {request['agency']}, "
              f"sha256 {clip['sha256']}")
    print(f"approved request {args.id}; the footage is held until the agency can no longer fetch it")
    return 0


def cmd_requests_deny(args) -> int:
    from hub.neighbourhood.requests import deny

    hub = open_hub(args)
    try:
        decision = _with_gateway(hub, lambda client, gateway: deny(
            hub, client, gateway, args.id, args.silent))
    finally:
        hub.close()
    print(f"denied request {args.id}" + (" silently (nothing was sent)"
                                          if decision.answer is None else " (a signed denial was sent)"))
    return 0
