"""`porchlight alerts post|list`: neighbourhood alerts."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.cli.common import (
    Parser,
    data_arg,
    open_hub,
    passphrase_arg,
    print_json,
)
from hub.errors import UsageError
from hub.timeutil import iso_second


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    alerts = sub.add_parser("alerts", help="neighbourhood alerts")
    asub = alerts.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = asub.add_parser("post", help="post an alert to the neighbourhood")
    data_arg(p)
    p.add_argument("--category", required=True,
                   help="crime, safety, suspicious, unknown visitor, lost pet or neighbourly")
    p.add_argument("--text", required=True)
    attach = p.add_mutually_exclusive_group()
    attach.add_argument("--photo", type=Path, help="a JPEG or PNG to share (faces blurred)")
    attach.add_argument("--event", metavar="ID", help="share a motion event's snapshot (faces blurred)")
    p.add_argument("--no-blur", action="store_true", help="share faces unblurred (this post only)")
    passphrase_arg(p)
    p = asub.add_parser("list", help="the alerts feed")
    data_arg(p)
    p.add_argument("--json", action="store_true")


def cmd_alerts_post(args) -> int:
    from hub.neighbourhood.alerts import parse_category
    from hub.neighbourhood.attachments import remove_attachments, store_attachments
    from hub.neighbourhood.service import alert_channels, queue_alert

    category = parse_category(args.category)
    hub = open_hub(args)
    try:
        # Every precondition first: a post that cannot go out leaves nothing behind.
        alert_channels(hub)
        prepared, faces = _alert_attachments(hub, args) if args.photo or args.event else ([], 0)
        attachments, created = store_attachments(hub.data, prepared)
        try:
            posted = queue_alert(hub, category, args.text, attachments)
        except BaseException:
            remove_attachments(created)
            raise
    finally:
        hub.close()
    if attachments:
        kinds = ", ".join(a["type"] for a in attachments)
        print(f"sharing {kinds}: "
              + (f"{faces} faces blurred" if not args.no_blur else "faces NOT blurred"))
    for channel, alert in posted.items():
        print(f"queued for the {channel}: {alert}")
    print("the running hub (`porchlight run`) delivers it, retrying while a peer is down")
    return 0


def _alert_attachments(hub, args) -> tuple[list[tuple[bytes, str]], int]:
    """Prepare in memory what an alert shares: a photo file, or an event's snapshot and clip."""
    from hub.neighbourhood.attachments import event_attachments, prepare_photo

    blur = not args.no_blur
    if args.photo:
        try:
            data = args.photo.read_bytes()
        except OSError as err:
            raise UsageError(f"--photo: cannot read {args.photo}: {err.strerror}") from None
        photo, faces = prepare_photo(hub, data, blur=blur)
        return [(photo, "image/jpeg")], faces
    from hub.household import unlock_household

    if hub.db.execute("select 1 from events where id = ?", [args.event]).fetchone() is None:
        raise UsageError(f"--event: no event {args.event!r} on this hub "
                         "(see `porchlight events list`)")
    identity = unlock_household(hub.data, args.passphrase_file)
    return event_attachments(hub, args.event, identity, blur=blur)


def cmd_alerts_list(args) -> int:
    from hub.neighbourhood.alerts import list_alerts, with_local_copies

    hub = open_hub(args)
    try:
        alerts = list_alerts(hub.db)
    finally:
        hub.close()
    if args.json:
        print_json([with_local_copies(a, hub.data) for a in alerts])
    elif not alerts:
        print("no alerts")
    else:
        for a in alerts:
            print(f"{iso_second(a.issued)}  {a.category.replace('_', ' '):<15} {a.verification}: {a.text}")
    return 0
