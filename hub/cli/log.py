"""`porchlight log verify`: thin wiring to the log auditor."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hub.cli.common import (
    Parser,
    run_async,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    log_parser = sub.add_parser("log", help="the public transparency log")
    lsub = log_parser.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = lsub.add_parser("verify", help="replay and check a gateway's whole log")
    p.add_argument("--gateway", required=True, metavar="URL")
    p.add_argument("--data", type=Path, default=None,
                   help="where to remember the last checkpoint seen (default: the data dir)")
    p.add_argument("--registry-key", help="the authority's fingerprint, to check registry entries")
    p.add_argument("--json", action="store_true")


def cmd_log_verify(args) -> int:
    from federation.auditor.verify import log_verify
    from hub.datadir import default_data_dir

    state = (args.data or default_data_dir()) / "log-state"
    report = run_async(log_verify(args.gateway, state, authority_kid=args.registry_key))
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
