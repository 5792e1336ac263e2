"""`porchlight footage import|list|export|prune|check|hold|release`: the vault."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.cli.common import (
    Parser,
    data_arg,
    open_hub,
    passphrase_arg,
    print_json,
    window,
    window_args,
)
from hub.errors import PorchlightError
from hub.timeutil import iso_second, parse_time
from hub.words import plural


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    footage = sub.add_parser("footage", help="the encrypted footage vault")
    fsub = footage.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = fsub.add_parser("import", help="seal media files into the vault (no passphrase needed)")
    data_arg(p)
    p.add_argument("--camera", required=True)
    p.add_argument("--start", required=True, help="ISO 8601 time of the first file's start")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p = fsub.add_parser("list", help="list the indexed segments (no passphrase needed)")
    data_arg(p)
    window_args(p, required=False)
    p.add_argument("--json", action="store_true")
    p = fsub.add_parser("export", help="decrypt and join footage into one MP4")
    data_arg(p)
    window_args(p, required=True)
    p.add_argument("--out", required=True, type=Path)
    passphrase_arg(p)
    p = fsub.add_parser("prune", help="apply the retention rules now")
    data_arg(p)
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted")
    p.add_argument("--json", action="store_true")
    p = fsub.add_parser("check", help="check and repair the vault; report every repair")
    data_arg(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--decode", action="store_true",
                   help="also decrypt and decode every segment to its end (passphrase)")
    passphrase_arg(p)
    p = fsub.add_parser("hold", help="keep footage from retention")
    data_arg(p)
    window_args(p, required=True)
    p.add_argument("--reason", default="owner", help="a label to release the hold by")
    p = fsub.add_parser("release", help="lift the owner's holds with this label")
    data_arg(p)
    p.add_argument("--reason", default="owner")


def cmd_footage_import(args) -> int:
    from hub.vault.footage import import_files, import_lines

    start = parse_time(args.start, "--start")
    hub = open_hub(args)
    notes: list[str] = []
    try:
        segments = import_files(hub, args.camera, start, args.files, notes=notes)
    finally:
        hub.close()
    for line in import_lines(args.camera, segments, notes):
        print(line)
    return 0


def cmd_footage_list(args) -> int:
    from hub.vault.media import SEGMENT_TYPE

    start, end = window(args)
    hub = open_hub(args)
    try:
        if args.camera:
            hub.vault.check_camera(args.camera, [c.name for c in hub.config.cameras])
        segments = hub.vault.segments(args.camera, start, end)
    finally:
        hub.close()
    if args.json:
        print_json([s.as_json() for s in segments])
        return 0
    if not segments:
        print("no footage")
        return 0
    print(f"{'camera':<16} {'start':<20} {'end':<20} {'type':<8} {'size':>10} {'status':<8} id")
    for s in segments:
        kind = "video" if s.media_type == SEGMENT_TYPE else "snapshot"
        print(f"{s.camera:<16} {iso_second(s.start):<20} {iso_second(s.end):<20} {kind:<8} "
              f"{s.size:>10} "
              f"{s.status:<8} {s.id}")
    return 0


def cmd_footage_export(args) -> int:
    from hub.household import unlock_household
    from hub.vault.footage import export_footage

    start, end = window(args)
    hub = open_hub(args)

    def unlock():
        return unlock_household(hub.data, args.passphrase_file)

    try:
        result = export_footage(hub, args.camera, start, end, args.out, unlock)
    finally:
        hub.close()
    for note in result.overlaps.values():
        print(f"note: {note} (two recordings of the same moments: was a second hub running "
              "on this data dir?)")
    total = len(result.failed) + len(result.exported)
    span = ""
    if result.span is not None:
        first, last = result.span
        span = f" ({iso_second(first)} to {iso_second(last)}, " \
            f"{(last - first).total_seconds():.1f} s)"
    if result.failed:
        wrote = f"wrote {result.out}{span} from {len(result.exported)} of " \
            f"{plural(total, 'segment')}; " \
            if result.out is not None else "wrote nothing; "
        raise PorchlightError(
            wrote + "; ".join(result.failed.values()) + "; run `porchlight footage check`"
        )
    print(f"wrote {result.out}{span} from {plural(len(result.exported), 'segment')}")
    return 0


def cmd_footage_prune(args) -> int:
    from hub.vault.maintenance import apply_retention, plan_for_vault
    from hub.vault.retention import RetentionPolicy

    hub = open_hub(args)
    try:
        policy = RetentionPolicy.from_config(hub.config.retention)
        now = hub.clock()
        plan = plan_for_vault(hub.vault, policy, now) if args.dry_run else \
            apply_retention(hub.vault, policy, now)
    finally:
        hub.close()
    if args.json:
        print_json({"dry_run": args.dry_run, "delete": plan.delete, "reasons": plan.reasons,
                    "freed": plan.freed, "still_over_budget": plan.still_over_budget})
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {plural(len(plan.delete), 'segment')} ({plural(plan.freed, 'byte')})")
    for segment_id in plan.delete:
        print(f"  {segment_id}: {plan.reasons[segment_id]}")
    if plan.still_over_budget:
        print("still over the disk budget: the rest is held")
    return 0


def cmd_footage_check(args) -> int:
    from hub.household import unlock_household
    from hub.vault.repair import check_decoding, check_vault

    hub = open_hub(args)
    try:
        # The passphrase first: a wrong one must stop the check before it repairs anything.
        identity = unlock_household(hub.data, args.passphrase_file) if args.decode else None
        report = check_vault(hub.vault, verify_hashes=True)
        if identity is not None:
            report.repairs.extend(check_decoding(hub.vault, identity, progress=True))
    finally:
        hub.close()
    if args.json:
        print_json({"checked": report.checked, "decoded": args.decode,
                    "repairs": [r.as_json() for r in report.repairs]})
    else:
        how = " (decoded to the end)" if args.decode else ""
        print(f"checked {plural(report.checked, 'segment')}{how}: "
              + ("all whole" if report.clean else plural(len(report.repairs), "finding")))
        for repair in report.repairs:
            print(f"  {repair.action}: {repair.path} ({repair.detail})")
    return 0 if all(r.action in ("reindexed", "removed-temp", "cleared")
                    for r in report.repairs) else 1


def cmd_footage_hold(args) -> int:
    from hub.vault.holds import check_label, hold_range

    start, end = window(args)
    label = check_label(args.reason)
    hub = open_hub(args)
    try:
        hub.vault.check_camera(args.camera, [c.name for c in hub.config.cameras])
        count = hold_range(hub.vault, args.camera, start, end, label)
    finally:
        hub.close()
    print(f"held {plural(count, 'segment')} (release with `porchlight footage release --reason {label}`)")
    return 0


def cmd_footage_release(args) -> int:
    hub = open_hub(args)
    try:
        count = hub.vault.release("owner", args.reason.strip())
    finally:
        hub.close()
    print(f"released {plural(count, 'hold')}")
    return 0
