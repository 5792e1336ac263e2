"""`porchlight passphrase change`: seal the household key with a new passphrase."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub.cli.common import Parser, data_arg, passphrase_arg


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    noun = sub.add_parser("passphrase", help="change the household passphrase")
    actions = noun.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = actions.add_parser("change", help="seal the household key with a new passphrase (the "
                                          "footage stays readable; the old passphrase stops "
                                          "opening it)")
    data_arg(p)
    passphrase_arg(p)
    p.add_argument("--new-passphrase-file", type=Path, default=None,
                   help="read the new passphrase from this file (else a prompt, asked twice)")


def cmd_passphrase_change(args) -> int:
    from hub.config import load_config
    from hub.datadir import DataDir
    from hub.errors import PassphraseError
    from hub.household import (
        change_household_passphrase,
        check_new_passphrase,
        read_passphrase,
        unlock_household,
    )

    data = DataDir(args.data).require()
    work_factor = load_config(data.root).vault.passphrase_work_factor
    if args.new_passphrase_file is None and not sys.stdin.isatty():
        raise PassphraseError("a new passphrase is needed: use --new-passphrase-file FILE, or "
                              "run in a terminal")
    identity = unlock_household(data, args.passphrase_file)  # at a prompt, asked again if wrong
    # Never from $PORCHLIGHT_PASSPHRASE: that one is the current passphrase.
    new = read_passphrase(args.new_passphrase_file, confirm=True, check=check_new_passphrase,
                          prompt="New household passphrase", environment=False)
    change_household_passphrase(data, identity, new, work_factor)
    print(f"the household key in {data.identity} is now sealed with the new passphrase "
          f"(age scrypt 2^{work_factor}); the old one no longer opens it")
    print("backups taken before still open with the old passphrase (docs/backup.md)")
    return 0
