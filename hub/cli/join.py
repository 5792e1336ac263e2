"""`porchlight join`: join a neighbourhood gateway with an invite code."""

from __future__ import annotations

import argparse

from hub.cli.common import (
    data_arg,
    open_hub,
    run_async,
)
from hub.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    p = sub.add_parser("join", help="join a neighbourhood gateway with an invite code")
    data_arg(p)
    p.add_argument("url", nargs="?", help="the gateway's URL (default: find it on the LAN by mDNS)")
    p.add_argument("code", help="the one-time invite code")
    p.add_argument("--gateway-key", help="the gateway's fingerprint, to pin it (from its operator)")
    p.add_argument("--registry-key",
                   help="the registry authority's fingerprint, to pin it (from the neighbourhood)")


def cmd_join(args) -> int:
    from federation.keys import fingerprint
    from hub.neighbourhood.policy import choose_witness_policy
    from hub.neighbourhood.service import join

    hub = open_hub(args)
    try:
        url = args.url or _gateway_on_the_lan(hub)
        membership = join(hub, url, args.code, pin=args.gateway_key,
                          registry_key=args.registry_key)
        policy = run_async(choose_witness_policy(hub, membership))
    finally:
        hub.close()
    print(f"joined {membership.gateway_name} at {membership.url}")
    print(f"pinned gateway key {fingerprint(membership.gateway_kid)}")
    print(f"registered cell {membership.cell} (your exact location stays on this hub)")
    if policy.k and policy.chosen:
        print(f"agency requests need cosignatures by {policy.k} of the {policy.trusted} "
              "witnesses this hub trusts (its own [witnesses] keys and its LAN neighbours'); "
              f"the gateway's checkpoint is cosigned by {', '.join(policy.cosigned_by)} "
              "(min under [witnesses] in config.toml, docs/witness.md)")
    elif policy.k:
        print(f"agency requests need cosignatures by {policy.k} of your "
              f"{policy.trusted} trusted witnesses ([witnesses] in config.toml)")
    else:
        print("agency requests need no witness cosignatures yet: add the keys of witnesses you "
              "trust and min = K under [witnesses] in config.toml (docs/witness.md)")
    return 0


def _gateway_on_the_lan(hub) -> str:
    from federation.mdns import browse

    found = [g for g in browse(3.0, list(hub.config.lan.interfaces) or None, role="gateway")
             if g.url]
    if not found:
        raise UsageError("no gateway answered on the LAN (mDNS); give its URL: "
                         "`porchlight join URL CODE`")
    if len({g.url for g in found}) > 1:
        listing = ", ".join(sorted({g.url for g in found}))
        raise UsageError(f"several gateways on the LAN ({listing}); give the URL of yours")
    print(f"found gateway {found[0].kid[:12]} on the LAN at {found[0].url}")
    return found[0].url
