"""`porchlight log verify`: thin wiring to the log auditor."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hub.cli.common import (
    Parser,
    run_async,
)
from hub.errors import UsageError

# A signed checkpoint is a few lines; a witness-cosigned one a few more.
MAX_CHECKPOINT_FILE = 256 * 1024


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    log_parser = sub.add_parser("log", help="the public transparency log")
    lsub = log_parser.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = lsub.add_parser("verify", help="rebuild a gateway's whole log from its tiles and check it")
    p.add_argument("--gateway", required=True, metavar="URL")
    p.add_argument("--data", type=Path, default=None,
                   help="where to remember the last checkpoint seen (default: the data dir)")
    p.add_argument("--registry-key", help="the authority's fingerprint, to check registry entries")
    p.add_argument("--checkpoint", type=Path, action="append", default=[], metavar="FILE",
                   help="a signed checkpoint someone else saw, to check for a fork (repeatable)")
    p.add_argument("--witness", action="append", default=[], metavar="VKEY",
                   help="a witness key (name+keyid+base64, C2SP vkey): report whether it "
                        "cosigned the checkpoint (repeatable)")
    p.add_argument("--min-witnesses", type=int, default=0, metavar="K",
                   help="fail unless at least K of the --witness keys cosigned (default 0)")
    p.add_argument("--json", action="store_true")


def _read_checkpoint(path: Path) -> tuple[str, str]:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CHECKPOINT_FILE + 1)
    except OSError as err:
        raise UsageError(f"cannot read checkpoint {path}: {err.strerror or err}") from err
    if len(data) > MAX_CHECKPOINT_FILE:
        raise UsageError(f"checkpoint {path} is over {MAX_CHECKPOINT_FILE} bytes: not a checkpoint")
    try:
        return str(path), data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"checkpoint {path} is not UTF-8 text: not a checkpoint") from err


def _witnesses(vkeys: list[str], k: int) -> list:
    from federation.tlog.cosignature import CosignatureError, CosignatureVerifier

    if not 0 <= k <= len(vkeys):
        raise UsageError(f"--min-witnesses {k}: give 0 to {len(vkeys)} (the number of --witness "
                         "keys)")
    verifiers = []
    for vkey in vkeys:
        try:
            verifiers.append(CosignatureVerifier.from_string(vkey))
        except CosignatureError as err:
            raise UsageError(f"--witness {vkey[:60]}: {err.message}") from err
    return verifiers


def _count(number: int, kind: str) -> str:
    one, many = _NOUNS.get(kind, (kind, kind + "s"))
    return f"{number} {one if number == 1 else many}"


_NOUNS = {"registry": ("registry version", "registry versions")}


def cmd_log_verify(args) -> int:
    from federation.auditor.verify import log_verify
    from hub.datadir import default_data_dir

    seen = [_read_checkpoint(path) for path in args.checkpoint]
    witnesses = _witnesses(args.witness, args.min_witnesses)
    state = (args.data or default_data_dir()) / "log-state"
    report = run_async(log_verify(args.gateway, state, authority_kid=args.registry_key,
                                  checkpoints=seen, witnesses=witnesses,
                                  min_witnesses=args.min_witnesses))
    summary = {"gateway": report.gateway_url, "size": report.size,
               "previous_size": report.previous_size, "counts": report.counts,
               "tiles_checked": report.tiles_checked,
               "entries_unchecked": report.entries_unchecked,
               "proofs_checked": report.proofs_checked,
               "checkpoints_checked": report.checkpoints_checked,
               "cosigned_by": report.cosigned_by,
               "min_witnesses": report.min_witnesses,
               "ok": report.ok,
               "problems": [p.__dict__ for p in report.problems]}
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        counts = ", ".join(_count(v, k) for k, v in report.counts.items())
        if report.entries_unchecked:
            counts += f", {report.entries_unchecked} unchecked"
        print(f"log of {report.gateway_url}: {report.size} entries ({counts}), "
              f"{report.tiles_checked} tiles and {report.proofs_checked} proofs checked")
        if witnesses:
            print(f"cosigned by {len(report.cosigned_by)} of the {len(witnesses)} witnesses "
                  f"given ({report.min_witnesses} required): "
                  f"{', '.join(report.cosigned_by) or 'none'}")
        for problem in report.problems:
            print(f"problem: {problem.line()}")
        if report.ok:
            print("OK: the tiles rebuild the signed checkpoint, every entry checks out, and the "
                  "log is consistent with every checkpoint seen")
        else:
            print(f"NOT OK: {len(report.problems)} "
                  f"problem{'' if len(report.problems) == 1 else 's'}")
    return 0 if report.ok else 1
