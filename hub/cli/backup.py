"""`porchlight backup` and `porchlight restore`: a whole hub in one encrypted file, and back."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub.cli.common import data_arg, passphrase_arg, required_data
from hub.errors import UsageError
from hub.words import plural


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    p = sub.add_parser("backup", help="write the hub (keys, config, database) to one encrypted "
                                      "file; no passphrase needed")
    data_arg(p)
    p.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="the backup file to write (never overwritten)")
    p.add_argument("--with-footage", action="store_true",
                   help="also copy the vault (its files stay age-encrypted as they are)")
    p.add_argument("--passphrase", action="store_true",
                   help="seal with a passphrase of its own instead of to the household key")
    p.add_argument("--passphrase-file", type=Path, default=None,
                   help="with --passphrase: read it from this file (else "
                        "$PORCHLIGHT_PASSPHRASE, else a prompt)")
    p = sub.add_parser("restore", help="fill a new or empty data dir from a backup file")
    p.add_argument("file", type=Path, metavar="FILE", help="the backup file")
    required_data(p, "the new or empty directory to restore into")
    passphrase_arg(p)


def cmd_backup(args) -> int:
    from hub.backup.archive import SEALED_HOUSEHOLD
    from hub.backup.take import take_backup
    from hub.household import check_new_passphrase, read_passphrase

    passphrase = None
    if args.passphrase:
        passphrase = read_passphrase(args.passphrase_file, confirm=True,
                                     check=check_new_passphrase, prompt="Backup passphrase")
    elif args.passphrase_file is not None:
        raise UsageError("--passphrase-file goes with --passphrase (a backup sealed to the "
                         "household key needs no passphrase)")
    summary = take_backup(args.data, args.out, with_footage=args.with_footage,
                          passphrase=passphrase, progress=sys.stderr.isatty())
    footage = (f", {plural(summary.segments, 'segment')} of footage" if args.with_footage
               else ", no footage")
    print(f"wrote {summary.path}: {_size(summary.size)}, {plural(summary.files, 'file')}{footage}")
    if summary.sealed == SEALED_HOUSEHOLD:
        print("sealed to the household key: it opens with the household passphrase")
    else:
        print("sealed with its own passphrase: it opens with that passphrase only")
    return 0


def cmd_restore(args) -> int:
    from hub.backup.archive import SEALED_HOUSEHOLD
    from hub.backup.restore import open_for_restore, restore_backup, unlock
    from hub.household import read_passphrase

    opened = open_for_restore(args.file, args.data)
    prompt = ("Household passphrase (of when the backup was taken)"
              if opened.sealed == SEALED_HOUSEHOLD else "Backup passphrase")
    identities = []
    read_passphrase(args.passphrase_file, prompt=prompt,
                    check=lambda value: identities.append(unlock(opened, value)))
    summary = restore_backup(opened, identities[-1], args.data, progress=sys.stderr.isatty())
    footage = (f", {plural(summary.segments, 'segment')} of footage" if summary.with_footage
               else ", no footage (the backup was taken without --with-footage)")
    print(f"restored the hub of {summary.created} into {summary.root}: "
          f"{plural(summary.files, 'file')}{footage}")
    print("if the old hub still runs, stop it before starting this one: both would speak to the "
          "gateway with one key")
    return 0


def _size(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
