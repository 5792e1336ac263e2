"""`porchlight camera add|list|discover|remove|set`."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.cli.common import (
    Parser,
    data_arg,
    open_hub,
    print_json,
)
from hub.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add this noun's commands to the parser."""
    camera = sub.add_parser("camera", help="the hub's cameras")
    csub = camera.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = csub.add_parser("add", help="add a camera (a running hub starts it within a second)")
    data_arg(p)
    p.add_argument("name")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--rtsp", metavar="URL", help="the main stream to record")
    kind.add_argument("--onvif", metavar="HOST:PORT", help="an ONVIF camera (streams resolved by ONVIF)")
    kind.add_argument("--synthetic", action="store_true", help="a generated test scene")
    p.add_argument("--sub-rtsp", metavar="URL", help="a smaller stream to analyse")
    p.add_argument("--user", help="the ONVIF user")
    p.add_argument("--password-file", type=Path, help="a file holding the ONVIF password")
    p.add_argument("--profile", help="the ONVIF media profile (token or 0-based index)")
    p.add_argument("--scenario", help="for --synthetic: a scene with motion, looped "
                   "(walking_figure, car, passers_by, ...)")
    p.add_argument("--mode", choices=["continuous", "motion"], default="continuous",
                   help="record all the time (default) or only around motion")
    p.add_argument("--no-analysis", dest="analysis", action="store_false",
                   help="do not look for motion on this camera (no events; not with "
                   "--mode motion)")
    p = csub.add_parser("list", help="list cameras and their state")
    data_arg(p)
    p.add_argument("--json", action="store_true")
    p = csub.add_parser("discover", help="find ONVIF cameras (WS-Discovery) and RTSP cameras (mDNS)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to listen (default 3)")
    p.add_argument("--json", action="store_true")
    p = csub.add_parser("remove", help="remove a camera (its footage stays)")
    data_arg(p)
    p.add_argument("name")
    p = csub.add_parser("set", help="turn a camera's recording or motion analysis on or off "
                        "(a running hub follows within a second)")
    data_arg(p)
    p.add_argument("name")
    p.add_argument("--recording", choices=["on", "off"],
                   help="off: the camera stays connected (live view, analysis), nothing is kept")
    p.add_argument("--analysis", choices=["on", "off"], help="look for motion (not off with "
                   "mode motion)")


def cmd_camera_add(args) -> int:
    from hub.cameras.admin import add_camera
    from hub.datadir import DataDir

    data = DataDir(args.data).require()
    if args.scenario is not None and not args.synthetic:
        raise UsageError("--scenario is for --synthetic cameras")
    if args.onvif:
        from hub.cameras.admin import add_onvif_camera

        table = add_onvif_camera(data, args.name, onvif=args.onvif, user=args.user,
                                 password_file=args.password_file, profile=args.profile,
                                 mode=args.mode, analysis=args.analysis)
    else:
        if args.user or args.password_file or args.profile:
            raise UsageError("--user, --password-file and --profile are for --onvif cameras; "
                             "an RTSP URL carries its credentials (rtsp://user:pass@host/path)")
        table = add_camera(data, args.name, rtsp=args.rtsp, sub_rtsp=args.sub_rtsp,
                           synthetic=args.synthetic, scenario=args.scenario, mode=args.mode,
                           analysis=args.analysis)
    analysis = "motion analysis" if args.analysis else "no analysis"
    print(f"added camera {args.name} ({table['type']}, {args.mode}, {analysis})")
    return 0


def cmd_camera_discover(args) -> int:
    from hub.cameras.discovery import discover_cameras

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
    from hub.cameras.admin import remove_camera
    from hub.datadir import DataDir

    remove_camera(DataDir(args.data).require(), args.name)
    print(f"removed camera {args.name}; its footage stays in the vault until retention")
    return 0


def cmd_camera_set(args) -> int:
    from hub.cameras.admin import set_camera_switches
    from hub.config import load_config
    from hub.datadir import DataDir

    if args.recording is None and args.analysis is None:
        raise UsageError("say what to change: --recording on|off, --analysis on|off")
    data = DataDir(args.data).require()
    set_camera_switches(data, args.name,
                        recording=None if args.recording is None else args.recording == "on",
                        analysis=None if args.analysis is None else args.analysis == "on")
    entry = next(c for c in load_config(data.root).cameras if c.name == args.name)
    print(f"camera {args.name}: recording {'on' if entry.recording else 'off'}, motion analysis "
          f"{'on' if entry.analysis else 'off'}")
    return 0


def cmd_camera_list(args) -> int:
    from hub.cameras.service import camera_states
    from hub.lock import running_holder

    hub = open_hub(args)
    try:
        # States are what a running hub last saw: with no hub running, none of them holds.
        states = camera_states(hub.db) if running_holder(hub.data.root) else {}
        cameras = [{"name": c.name, "type": c.type, "mode": c.mode,
                    "recording": c.recording, "analysis": c.analysis,
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
            off = [what for what, on in (("recording off", c["recording"]),
                                         ("no analysis", c["analysis"])) if not on]
            notes = f" ({', '.join(off)})" if off else ""
            print(f"{c['name']:<16} {c['type']:<10} {c['mode']:<11} {c['state']:<12} "
                  f"{c['detail']}{notes}".rstrip())
    return 0
