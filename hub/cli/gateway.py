"""`porchlight gateway init|invite|block|unblock|run`: thin wiring to the gateway program."""

from __future__ import annotations

import argparse
import threading

from hub.cli.common import (
    Parser,
    required_data,
)
from hub.errors import PorchlightError, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    gateway = sub.add_parser("gateway", help="run a neighbourhood gateway")
    gsub = gateway.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = gsub.add_parser("init", help="create a gateway")
    required_data(p, "the gateway's data dir")
    p.add_argument("--name", required=True)
    p.add_argument("--registry-key", help="the registry authority's fingerprint")
    p = gsub.add_parser("invite", help="print a one-time invite code")
    required_data(p, "the gateway's data dir")
    for name in ("block", "unblock"):
        p = gsub.add_parser(name, help=f"{name} a hub by its kid")
        required_data(p, "the gateway's data dir")
        p.add_argument("kid")
    p = gsub.add_parser("run", help="serve the gateway until SIGTERM")
    required_data(p, "the gateway's data dir")
    p.add_argument("--listen", default="127.0.0.1:8470")
    p.add_argument("--public-url", help="the URL hubs use to reach this gateway")
    p.add_argument("--lan", action="store_true",
                   help="advertise the gateway on the LAN (mDNS) so new hubs find it")
    p.add_argument("--lan-interface", action="append", default=[], metavar="ADDR",
                   help="the address to advertise on (repeatable; default: all)")


def _gateway_call(fn, *args, **kwargs):
    from federation.errors import FederationError

    try:
        return fn(*args, **kwargs)
    except FederationError as err:
        raise PorchlightError(err.message) from err


def cmd_gateway_init(args) -> int:
    from federation.gateway.operator import init_gateway

    info = _gateway_call(init_gateway, args.data, name=args.name, registry_key=args.registry_key)
    print(f"created gateway {info.name!r} in {info.data_dir}")
    print(f"gateway key fingerprint (give it to your neighbours): {info.fingerprint}")
    return 0


def cmd_gateway_invite(args) -> int:
    from federation.gateway.operator import create_invite

    print(_gateway_call(create_invite, args.data))
    return 0


def cmd_gateway_block(args) -> int:
    from federation.gateway.operator import block_hub

    _gateway_call(block_hub, args.data, args.kid)
    print(f"blocked {args.kid}")
    return 0


def cmd_gateway_unblock(args) -> int:
    from federation.gateway.operator import unblock_hub

    done = _gateway_call(unblock_hub, args.data, args.kid)
    print(f"unblocked {args.kid}" if done else f"{args.kid} was not blocked")
    return 0


def cmd_gateway_run(args) -> int:
    from federation.gateway.operator import parse_listen, run_gateway
    from hub.ports import is_address_in_use, listen_error, require_free_port

    try:
        host, port = parse_listen(args.listen)
    except ValueError as err:
        raise UsageError(str(err)) from None
    hint = "is another gateway running? (--listen to choose another)"
    require_free_port(host, port, hint)
    advertisers = []

    def ready(where) -> None:
        print(f"porchlight: gateway listening on {where.url} as {where.kid}", flush=True)
        if args.lan:
            from urllib.parse import urlsplit

            from federation.mdns import Advertiser, service_info

            address = args.lan_interface[0] if args.lan_interface else urlsplit(where.url).hostname
            # Zeroconf's blocking calls must not run on the gateway's event loop.
            thread = threading.Thread(target=lambda: advertisers.append(Advertiser(
                service_info(where.kid, "gateway", address, where.port, where.url),
                args.lan_interface or None)), name="mdns-advertise", daemon=True)
            thread.start()

    try:
        _gateway_call(run_gateway, args.data, host, port, public_url=args.public_url,
                      on_ready=ready)
    except OSError as err:
        if is_address_in_use(err):  # taken between the check and the bind
            raise listen_error(err, host, port, hint) from None
        raise
    finally:
        for advertiser in advertisers:
            advertiser.close()
    return 0
