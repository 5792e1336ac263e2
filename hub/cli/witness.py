"""`porchlight witness init|follow|run`: thin wiring to the witness program (C2SP tlog-witness);
`porchlight witness enable`: a hub witnesses its own gateway's log."""

from __future__ import annotations

import argparse

from hub.cli.common import Parser, data_arg, open_hub, required_data, run_async


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    witness = sub.add_parser("witness", help="cosign a gateway's log checkpoints (a witness)")
    wsub = witness.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = wsub.add_parser("init", help="create a witness; prints its key for the logs and readers")
    required_data(p, "the witness's data dir")
    p.add_argument("--name", required=True,
                   help="a schema-less URL naming the witness, e.g. witness.example.org/w1")
    p = wsub.add_parser("follow", help="follow a gateway's log (its key pinned if given)")
    required_data(p, "the witness's data dir")
    p.add_argument("--gateway", required=True, metavar="URL")
    p.add_argument("--gateway-key", help="the gateway's fingerprint, to pin it")
    p = wsub.add_parser("run", help="serve POST /add-checkpoint until SIGTERM")
    required_data(p, "the witness's data dir")
    p.add_argument("--listen", default="127.0.0.1:8471")
    p = wsub.add_parser("enable", help="make this hub a witness of its gateway's log (on its "
                                       "LAN server); prints the lines for the gateway's operator")
    data_arg(p)


def cmd_witness_init(args) -> int:
    from federation.witness.operator import init_witness

    vkey = init_witness(args.data, args.name)
    print(f"created witness {args.name} in {args.data}")
    print(f"witness key (give it to the gateway and to readers): {vkey}")
    return 0


def cmd_witness_follow(args) -> int:
    from federation.witness.operator import follow_gateway

    origin = run_async(follow_gateway(args.data, args.gateway, args.gateway_key))
    print(f"following {origin}")
    return 0


def cmd_witness_run(args) -> int:
    from federation.witness.operator import run_witness
    from hub.ports import split_listen

    host, port = split_listen(args.listen)
    run_witness(args.data, host, port, on_ready=lambda where: print(
        f"porchlight: witness listening on {where.url}\nwitness key {where.vkey}", flush=True))
    return 0


def cmd_witness_enable(args) -> int:
    from hub.neighbourhood.lan import lan_url
    from hub.neighbourhood.service import load_membership
    from hub.neighbourhood.witness import enable_witness

    hub = open_hub(args)
    try:
        membership = load_membership(hub.data)
        vkey = enable_witness(hub, membership)
        url = lan_url(hub.config)
    finally:
        hub.close()
    print(f"this hub witnesses the log of gateway {membership.gateway_name} "
          "(restart `porchlight run` if it is running)")
    print(f"witness key: {vkey}")
    print("give the gateway's operator these lines for gateway.toml:")
    print(f'[[witnesses]]\nurl = "{url}"\nvkey = "{vkey}"')
    return 0
