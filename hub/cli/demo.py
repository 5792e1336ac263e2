"""`porchlight demo`: a whole neighbourhood on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    p = sub.add_parser("demo", help="show a whole hub at work on embedded defaults")
    p.add_argument("--keep", type=Path, default=None, help="keep the demo's data in this dir")
    p.add_argument("--no-wait", action="store_true",
                   help="stop after the walk-through instead of running until Ctrl-C")


def cmd_demo(args) -> int:
    from hub.demo import run_demo

    return run_demo(keep=args.keep, wait=not args.no_wait)
