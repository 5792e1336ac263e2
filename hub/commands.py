"""What each `porchlight` subcommand does with its parsed arguments."""

from __future__ import annotations

import argparse
import threading

from .cli import print_json, window
from .errors import PorchlightError, UsageError
from .timeutil import iso, parse_time


def dispatch(args: argparse.Namespace) -> int:
    """Run the subcommand named on the command line."""
    from .commands_agency import COMMANDS

    name = f"{args.command}_{args.action}" if getattr(args, "action", None) else args.command
    return (_COMMANDS.get(name) or COMMANDS[name])(args) or 0


def cmd_init(args) -> int:
    from .household import read_passphrase
    from .init import create_hub, parse_location

    location = parse_location(args.location) if args.location else None
    passphrase = read_passphrase(args.passphrase_file, confirm=True)
    data = create_hub(args.data, passphrase, name=args.name, location=location)
    print(f"created hub in {data.root}")
    print(f"household recipient: {data.recipient.read_text().strip()}")
    return 0


def cmd_run(args) -> int:
    from .service import run_hub

    run_hub(args.data, args.listen)
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(keep=args.keep)


def _hub(args):
    from .service import Hub

    return Hub(args.data)


def cmd_footage_import(args) -> int:
    from .footage import import_files

    start = parse_time(args.start, "--start")
    hub = _hub(args)
    try:
        segments = import_files(hub, args.camera, start, args.files)
    finally:
        hub.close()
    print(f"sealed {len(segments)} segments of {args.camera} into the vault")
    return 0


def cmd_footage_list(args) -> int:
    start, end = window(args)
    hub = _hub(args)
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
    print(f"{'camera':<16} {'start':<27} {'end':<27} {'size':>10} {'status':<8} id")
    for s in segments:
        print(f"{s.camera:<16} {iso(s.start):<27} {iso(s.end):<27} {s.size:>10} {s.status:<8} {s.id}")
    return 0


def cmd_footage_export(args) -> int:
    from .footage import export_footage
    from .household import read_passphrase, unlock_household_identity

    start, end = window(args)
    hub = _hub(args)

    def unlock():
        return unlock_household_identity(hub.data, read_passphrase(args.passphrase_file))

    try:
        result = export_footage(hub, args.camera, start, end, args.out, unlock)
    finally:
        hub.close()
    total = len(result.failed) + len(result.exported)
    if result.failed:
        wrote = f"wrote {result.out} from {len(result.exported)} of {total} segments; " \
            if result.out is not None else "wrote nothing; "
        raise PorchlightError(
            wrote + "; ".join(result.failed.values()) + "; run `porchlight footage check`"
        )
    print(f"wrote {result.out} from {total} segments")
    return 0


def cmd_footage_prune(args) -> int:
    from .maintenance import apply_retention, plan_for_vault
    from .retention import RetentionPolicy

    hub = _hub(args)
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
    print(f"{verb} {len(plan.delete)} segments ({plan.freed} bytes)")
    for segment_id in plan.delete:
        print(f"  {segment_id}: {plan.reasons[segment_id]}")
    if plan.still_over_budget:
        print("still over the disk budget: the rest is held")
    return 0


def cmd_footage_check(args) -> int:
    from .repair import check_vault

    hub = _hub(args)
    try:
        report = check_vault(hub.vault, verify_hashes=True)
    finally:
        hub.close()
    if args.json:
        print_json({"checked": report.checked, "repairs": [r.as_json() for r in report.repairs]})
    else:
        print(f"checked {report.checked} segments: "
              + ("all whole" if report.clean else f"{len(report.repairs)} findings"))
        for repair in report.repairs:
            print(f"  {repair.action}: {repair.path} ({repair.detail})")
    return 0 if all(r.action in ("reindexed", "removed-temp", "cleared")
                    for r in report.repairs) else 1


def cmd_footage_hold(args) -> int:
    start, end = window(args)
    hub = _hub(args)
    try:
        hub.vault.check_camera(args.camera, [c.name for c in hub.config.cameras])
        segments = hub.vault.segments(args.camera, start, end)
        if not segments:
            raise UsageError(f"no footage of {args.camera} in that window to hold")
        count = hub.vault.hold(segments, "owner", args.reason)
    finally:
        hub.close()
    print(f"held {count} segments (release with `porchlight footage release --reason {args.reason}`)")
    return 0


def cmd_footage_release(args) -> int:
    hub = _hub(args)
    try:
        count = hub.vault.release("owner", args.reason)
    finally:
        hub.close()
    print(f"released {count} holds")
    return 0


def cmd_camera_add(args) -> int:
    from .camera_admin import add_camera
    from .datadir import DataDir

    data = DataDir(args.data).require()
    if args.onvif:
        from .camera_admin import add_onvif_camera

        table = add_onvif_camera(data, args.name, onvif=args.onvif, user=args.user,
                                 password_file=args.password_file, profile=args.profile,
                                 mode=args.mode)
    else:
        if args.user or args.password_file or args.profile:
            raise UsageError("--user, --password-file and --profile are for --onvif cameras; "
                             "an RTSP URL carries its credentials (rtsp://user:pass@host/path)")
        table = add_camera(data, args.name, rtsp=args.rtsp, sub_rtsp=args.sub_rtsp,
                           synthetic=args.synthetic, mode=args.mode)
    print(f"added camera {args.name} ({table['type']}, {args.mode})")
    return 0


def cmd_camera_discover(args) -> int:
    from .discovery import discover_cameras

    found = discover_cameras(timeout=args.timeout)
    if args.json:
        print_json(found)
    elif not found:
        print("no cameras answered (ONVIF WS-Discovery, mDNS _rtsp._tcp)")
    else:
        for item in found:
            where = item.get("url") or ", ".join(item.get("xaddrs") or []) or \
                f"{item['host']}:{item['port']}"
            print(f"{item['kind']:<6} {item.get('name') or '-':<30} {where}")
    return 0


def cmd_camera_remove(args) -> int:
    from .camera_admin import remove_camera
    from .datadir import DataDir

    remove_camera(DataDir(args.data).require(), args.name)
    print(f"removed camera {args.name}; its footage stays in the vault until retention")
    return 0


def cmd_camera_list(args) -> int:
    from .camera_service import camera_states

    hub = _hub(args)
    try:
        states = camera_states(hub.db)
        cameras = [{"name": c.name, "type": c.type, "mode": c.mode,
                    "state": states.get(c.name, {}).get("state", "not running"),
                    "detail": states.get(c.name, {}).get("detail", ""),
                    "since": states.get(c.name, {}).get("since")}
                   for c in hub.config.cameras]
    finally:
        hub.close()
    if args.json:
        print_json(cameras)
    elif not cameras:
        print("no cameras (add one with `porchlight camera add`)")
    else:
        for c in cameras:
            print(f"{c['name']:<16} {c['type']:<10} {c['mode']:<11} {c['state']:<12} {c['detail']}")
    return 0


def cmd_events_list(args) -> int:
    from .events import list_events

    start, end = window(args)
    hub = _hub(args)
    try:
        if args.camera:
            hub.vault.check_camera(args.camera, [c.name for c in hub.config.cameras])
        events = list_events(hub.vault, args.camera, start, end)
    finally:
        hub.close()
    if args.json:
        print_json(events)
    elif not events:
        print("no events")
    else:
        for e in events:
            print(f"{e['camera']:<16} {e['start']} .. {e['end']}  zones={','.join(e['zones']) or '-'}"
                  f"  segments={len(e['segments'])}  {e['id']}")
    return 0


def cmd_join(args) -> int:
    from federation.keys import fingerprint

    from .neighbourhood import join

    hub = _hub(args)
    try:
        url = args.url or _gateway_on_the_lan(hub)
        membership = join(hub, url, args.code, pin=args.gateway_key,
                          registry_key=args.registry_key)
    finally:
        hub.close()
    print(f"joined {membership.gateway_name} at {membership.url}")
    print(f"pinned gateway key {fingerprint(membership.gateway_kid)}")
    print(f"registered cell {membership.cell} (your exact location stays on this hub)")
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


def cmd_requests_list(args) -> int:
    from .requests import list_requests

    hub = _hub(args)
    try:
        requests = list_requests(hub, include_dropped=args.all)
    finally:
        hub.close()
    if args.json:
        print_json(requests)
    elif not requests:
        print("no requests")
    else:
        for r in requests:
            line = (f"{r['id']}  {r['status']:<15} {r['agency'] or '-'}  case {r['case_number'] or '-'}"
                    f"  {r['start'] or ''} .. {r['end'] or ''}")
            print(line + (f"  ({r['detail']})" if r["detail"] else ""))
    return 0


def cmd_requests_show(args) -> int:
    from .requests import footage_in_window, get_request

    hub = _hub(args)
    try:
        request = get_request(hub, args.id)
        if request["start"]:
            from datetime import datetime

            request["footage"] = footage_in_window(hub, datetime.fromisoformat(request["start"]),
                                                   datetime.fromisoformat(request["end"]))
    finally:
        hub.close()
    print_json(request)
    return 0


def _with_gateway(hub, work):
    """Run `work(client, gateway_kid)` against the hub's gateway."""
    import asyncio

    from .neighbourhood import with_gateway_client

    return asyncio.run(with_gateway_client(hub, work))


def cmd_requests_approve(args) -> int:
    from .household import read_passphrase, unlock_household_identity
    from .requests import approve, get_request

    hub = _hub(args)
    try:
        request = get_request(hub, args.id)
        if request["status"] != "pending":
            raise UsageError(f"request {args.id} is {request['status']}, not pending")
        identity = unlock_household_identity(hub.data, read_passphrase(args.passphrase_file))
        decision = _with_gateway(hub, lambda client, gateway: approve(
            hub, client, gateway, args.id, identity, args.camera or None, args.blur_faces))
    finally:
        hub.close()
    for clip in decision.clips:
        print(f"sent {clip['camera']}: {clip['size']} bytes sealed to {request['agency']}, "
              f"sha256 {clip['sha256']}")
    print(f"approved request {args.id}; the footage is held until the agency can no longer fetch it")
    return 0


def cmd_requests_deny(args) -> int:
    from .requests import deny

    hub = _hub(args)
    try:
        decision = _with_gateway(hub, lambda client, gateway: deny(
            hub, client, gateway, args.id, args.silent))
    finally:
        hub.close()
    print(f"denied request {args.id}" + (" silently (nothing was sent)"
                                          if decision.answer is None else " (a signed denial was sent)"))
    return 0


def cmd_alerts_post(args) -> int:
    from .alerts import parse_category
    from .neighbourhood import queue_alert

    category = parse_category(args.category)
    hub = _hub(args)
    try:
        attachments = _alert_attachments(hub, args) if args.photo or args.event else []
        posted = queue_alert(hub, category, args.text, attachments)
    finally:
        hub.close()
    for channel, alert in posted.items():
        print(f"queued for the {channel}: {alert}")
    print("the running hub (`porchlight run`) delivers it, retrying while a peer is down")
    return 0


def _alert_attachments(hub, args) -> list[dict]:
    """Prepare what an alert shares: a photo file, or an event's snapshot and clip."""
    from .attachments import event_attachments, prepare_photo, store_attachment

    blur = not args.no_blur
    if args.photo:
        try:
            data = args.photo.read_bytes()
        except OSError as err:
            raise UsageError(f"--photo: cannot read {args.photo}: {err.strerror}") from None
        photo, faces = prepare_photo(hub, data, blur=blur)
        shared = [store_attachment(hub.data, photo, "image/jpeg")]
    else:
        from .household import read_passphrase, unlock_household_identity

        if hub.db.execute("select 1 from events where id = ?", [args.event]).fetchone() is None:
            raise UsageError(f"--event: no event {args.event!r} on this hub "
                             "(see `porchlight events list`)")
        identity = unlock_household_identity(hub.data, read_passphrase(args.passphrase_file))
        shared, faces = event_attachments(hub, args.event, identity, blur=blur)
    kinds = ", ".join(a["type"] for a in shared)
    print(f"sharing {kinds}: " + (f"{faces} faces blurred" if blur else "faces NOT blurred"))
    return shared


def cmd_alerts_list(args) -> int:
    from .alerts import list_alerts, with_local_copies

    hub = _hub(args)
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
            print(f"{iso(a.issued)}  {a.category.replace('_', ' '):<15} {a.verification}: {a.text}")
    return 0


def _gateway_call(fn, *args, **kwargs):
    from federation.errors import FederationError

    try:
        return fn(*args, **kwargs)
    except FederationError as err:
        raise PorchlightError(err.message) from err


def cmd_gateway_init(args) -> int:
    from federation.gateway import init_gateway

    info = _gateway_call(init_gateway, args.data, name=args.name, registry_key=args.registry_key)
    print(f"created gateway {info.name!r} in {info.data_dir}")
    print(f"gateway key fingerprint (give it to your neighbours): {info.fingerprint}")
    return 0


def cmd_gateway_invite(args) -> int:
    from federation.gateway import create_invite

    print(_gateway_call(create_invite, args.data))
    return 0


def cmd_gateway_block(args) -> int:
    from federation.gateway import block_hub

    _gateway_call(block_hub, args.data, args.kid)
    print(f"blocked {args.kid}")
    return 0


def cmd_gateway_unblock(args) -> int:
    from federation.gateway import unblock_hub

    done = _gateway_call(unblock_hub, args.data, args.kid)
    print(f"unblocked {args.kid}" if done else f"{args.kid} was not blocked")
    return 0


def cmd_gateway_run(args) -> int:
    from federation.gateway import parse_listen, run_gateway

    try:
        host, port = parse_listen(args.listen)
    except ValueError as err:
        raise UsageError(str(err)) from None
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
    finally:
        for advertiser in advertisers:
            advertiser.close()
    return 0


_COMMANDS = {
    "requests_list": cmd_requests_list, "requests_show": cmd_requests_show,
    "requests_approve": cmd_requests_approve, "requests_deny": cmd_requests_deny,
    "join": cmd_join, "alerts_post": cmd_alerts_post, "alerts_list": cmd_alerts_list,
    "gateway_init": cmd_gateway_init, "gateway_invite": cmd_gateway_invite,
    "gateway_block": cmd_gateway_block, "gateway_unblock": cmd_gateway_unblock,
    "gateway_run": cmd_gateway_run,
    "camera_add": cmd_camera_add, "camera_list": cmd_camera_list,
    "camera_remove": cmd_camera_remove, "camera_discover": cmd_camera_discover, "events_list": cmd_events_list,
    "init": cmd_init, "run": cmd_run, "demo": cmd_demo,
    "footage_import": cmd_footage_import, "footage_list": cmd_footage_list,
    "footage_export": cmd_footage_export, "footage_prune": cmd_footage_prune,
    "footage_check": cmd_footage_check, "footage_hold": cmd_footage_hold,
    "footage_release": cmd_footage_release,
}
