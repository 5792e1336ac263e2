"""The `porchlight` command: argument parsing and dispatch; the work lives in other modules."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from federation.errors import FederationError

from .datadir import default_data_dir
from .errors import PorchlightError
from .timeutil import check_window, parse_time


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _data_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="the hub's data dir (default: $PORCHLIGHT_DATA, else the platform data dir)")


def _required_data(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--data", type=Path, required=True, help=what)


def _passphrase_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--passphrase-file", type=Path, default=None,
                        help="read the household passphrase from this file "
                             "(else $PORCHLIGHT_PASSPHRASE, else a prompt)")


def build_parser() -> argparse.ArgumentParser:
    """Build the whole command line."""
    parser = _Parser(prog="porchlight", description="Privacy-first home camera hub.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("init", help="create a hub")
    _data_arg(p)
    p.add_argument("--name", help="the hub's name (default: this machine's host name)")
    p.add_argument("--location", help="LAT,LON; stays on the hub, only a coarse cell is shared")
    _passphrase_arg(p)

    p = sub.add_parser("run", help="run the hub service")
    _data_arg(p)
    p.add_argument("--listen", help="HOST:PORT for the web service (default 127.0.0.1:8765)")

    p = sub.add_parser("demo", help="show a whole hub at work on embedded defaults")
    p.add_argument("--keep", type=Path, default=None, help="keep the demo's data in this dir")

    camera = sub.add_parser("camera", help="the hub's cameras")
    csub = camera.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = csub.add_parser("add", help="add a camera (a running hub starts it within a second)")
    _data_arg(p)
    p.add_argument("name")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--rtsp", metavar="URL", help="the main stream to record")
    kind.add_argument("--onvif", metavar="HOST:PORT", help="an ONVIF camera (streams resolved by ONVIF)")
    kind.add_argument("--synthetic", action="store_true", help="a generated test scene")
    p.add_argument("--sub-rtsp", metavar="URL", help="a smaller stream to analyse")
    p.add_argument("--user", help="the ONVIF user")
    p.add_argument("--password-file", type=Path, help="a file holding the ONVIF password")
    p.add_argument("--profile", help="the ONVIF media profile (token or 0-based index)")
    p.add_argument("--mode", choices=["continuous", "motion"], default="continuous")
    p = csub.add_parser("list", help="list cameras and their state")
    _data_arg(p)
    p.add_argument("--json", action="store_true")
    p = csub.add_parser("discover", help="find ONVIF cameras (WS-Discovery) and RTSP cameras (mDNS)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to listen (default 3)")
    p.add_argument("--json", action="store_true")
    p = csub.add_parser("remove", help="remove a camera (its footage stays)")
    _data_arg(p)
    p.add_argument("name")

    p = sub.add_parser("events", help="camera events").add_subparsers(
        dest="action", required=True, parser_class=_Parser).add_parser(
        "list", help="list motion events and the segments they link to")
    _data_arg(p)
    _window_args(p, required=False)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("join", help="join a neighbourhood gateway with an invite code")
    _data_arg(p)
    p.add_argument("url", nargs="?", help="the gateway's URL (default: find it on the LAN by mDNS)")
    p.add_argument("code", help="the one-time invite code")
    p.add_argument("--gateway-key", help="the gateway's fingerprint, to pin it (from its operator)")
    p.add_argument("--registry-key",
                   help="the registry authority's fingerprint, to pin it (from the neighbourhood)")

    requests = sub.add_parser("requests", help="agency requests for footage")
    rsub = requests.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = rsub.add_parser("list", help="the requests inbox")
    _data_arg(p)
    p.add_argument("--all", action="store_true", help="also the requests this hub dropped, and why")
    p.add_argument("--json", action="store_true")
    p = rsub.add_parser("show", help="one request in full")
    _data_arg(p)
    p.add_argument("id")
    p = rsub.add_parser("approve", help="seal and send the footage of a request")
    _data_arg(p)
    p.add_argument("id")
    p.add_argument("--camera", action="append", default=[],
                   help="a camera to send (repeatable; default: those with footage in the window)")
    p.add_argument("--blur-faces", action="store_true", help="blur faces (re-encodes the clips)")
    _passphrase_arg(p)
    p = rsub.add_parser("deny", help="deny a request")
    _data_arg(p)
    p.add_argument("id")
    p.add_argument("--silent", action="store_true", help="send no answer at all")

    alerts = sub.add_parser("alerts", help="neighbourhood alerts")
    asub = alerts.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = asub.add_parser("post", help="post an alert to the neighbourhood")
    _data_arg(p)
    p.add_argument("--category", required=True,
                   help="crime, safety, suspicious, unknown visitor, lost pet or neighbourly")
    p.add_argument("--text", required=True)
    attach = p.add_mutually_exclusive_group()
    attach.add_argument("--photo", type=Path, help="a JPEG or PNG to share (faces blurred)")
    attach.add_argument("--event", metavar="ID", help="share a motion event's snapshot (faces blurred)")
    p.add_argument("--no-blur", action="store_true", help="share faces unblurred (this post only)")
    _passphrase_arg(p)
    p = asub.add_parser("list", help="the alerts feed")
    _data_arg(p)
    p.add_argument("--json", action="store_true")

    gateway = sub.add_parser("gateway", help="run a neighbourhood gateway")
    gsub = gateway.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = gsub.add_parser("init", help="create a gateway")
    p.add_argument("--data", type=Path, required=True, help="the gateway's data dir")
    p.add_argument("--name", required=True)
    p.add_argument("--registry-key", help="the registry authority's fingerprint")
    p = gsub.add_parser("invite", help="print a one-time invite code")
    p.add_argument("--data", type=Path, required=True, help="the gateway's data dir")
    for name in ("block", "unblock"):
        p = gsub.add_parser(name, help=f"{name} a hub by its kid")
        p.add_argument("--data", type=Path, required=True, help="the gateway's data dir")
        p.add_argument("kid")
    p = gsub.add_parser("run", help="serve the gateway until SIGTERM")
    p.add_argument("--data", type=Path, required=True, help="the gateway's data dir")
    p.add_argument("--listen", default="127.0.0.1:8470")
    p.add_argument("--public-url", help="the URL hubs use to reach this gateway")
    p.add_argument("--lan", action="store_true",
                   help="advertise the gateway on the LAN (mDNS) so new hubs find it")
    p.add_argument("--lan-interface", action="append", default=[], metavar="ADDR",
                   help="the address to advertise on (repeatable; default: all)")

    registry = sub.add_parser("registry", help="the agency registry (for its authority)")
    regsub = registry.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = regsub.add_parser("init", help="create a registry authority; prints its fingerprint")
    _required_data(p, "the authority's data dir")
    p.add_argument("--name", required=True)
    p = regsub.add_parser("add", help="list an agency in the next registry version")
    _required_data(p, "the authority's data dir")
    p.add_argument("--card", required=True, type=Path, help="the agency's agency.json")
    p.add_argument("--jurisdiction", required=True,
                   help="LAT,LON,RADIUS_M, or h3:CELL[,CELL...] (resolution 7 or coarser)")
    p.add_argument("--since", required=True, help="YYYY-MM-DD, the partnership's start")
    p.add_argument("--contact", default="", help="how residents reach the agency")
    p = regsub.add_parser("remove", help="delist an agency from the next version")
    _required_data(p, "the authority's data dir")
    p.add_argument("kid")
    p = regsub.add_parser("sign", help="sign the next registry version and print it")
    _required_data(p, "the authority's data dir")
    p.add_argument("--audience", required=True, help="the gateway's kid (the neighbourhood id)")
    p = regsub.add_parser("publish", help="sign the next version and upload it to the gateway")
    _required_data(p, "the authority's data dir")
    p.add_argument("--gateway", required=True, metavar="URL")
    p = regsub.add_parser("show", help="the authority, its fingerprint and the listed agencies")
    _required_data(p, "the authority's data dir")

    agency = sub.add_parser("agency", help="the agency's tool")
    agsub = agency.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = agsub.add_parser("init", help="create the agency's keys and its public card agency.json")
    _required_data(p, "the agency's data dir")
    p.add_argument("--name", required=True)
    p = agsub.add_parser("request", help="sign and submit a request; prints its id last")
    _required_data(p, "the agency's data dir")
    p.add_argument("--gateway", required=True, metavar="URL")
    p.add_argument("--case", required=True)
    p.add_argument("--reason", required=True)
    p.add_argument("--from", dest="start", required=True, help="ISO 8601 time")
    p.add_argument("--to", dest="end", required=True, help="ISO 8601 time")
    p.add_argument("--lat", required=True, type=float)
    p.add_argument("--lon", required=True, type=float)
    p.add_argument("--radius-m", required=True, type=float)
    p.add_argument("--legal-basis", choices=["voluntary", "warrant"], default="voluntary")
    p.add_argument("--warrant", type=Path, help="the warrant (its SHA-256 goes in the request)")
    p = agsub.add_parser("announce", help="post a verified law-enforcement announcement")
    _required_data(p, "the agency's data dir")
    p.add_argument("--gateway", required=True, metavar="URL")
    p.add_argument("--text", required=True)
    p.add_argument("--category", required=True,
                   help="crime, safety, suspicious, unknown visitor, lost pet or neighbourly")
    p.add_argument("--lat", type=float)
    p.add_argument("--lon", type=float)
    p.add_argument("--radius-m", type=float, help="with --lat/--lon: only hubs around it")
    for name, text in (("status", "counts of answers to a request"),
                       ("fetch", "download, check and decrypt the approved clips")):
        p = agsub.add_parser(name, help=text)
        _required_data(p, "the agency's data dir")
        p.add_argument("--gateway", required=True, metavar="URL")
        p.add_argument("id")
        if name == "fetch":
            p.add_argument("--out", required=True, type=Path)

    log_parser = sub.add_parser("log", help="the public transparency log")
    lsub = log_parser.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = lsub.add_parser("verify", help="replay and check a gateway's whole log")
    p.add_argument("--gateway", required=True, metavar="URL")
    p.add_argument("--data", type=Path, default=None,
                   help="where to remember the last checkpoint seen (default: the data dir)")
    p.add_argument("--registry-key", help="the authority's fingerprint, to check registry entries")
    p.add_argument("--json", action="store_true")

    footage = sub.add_parser("footage", help="the encrypted footage vault")
    fsub = footage.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = fsub.add_parser("import", help="seal media files into the vault (no passphrase needed)")
    _data_arg(p)
    p.add_argument("--camera", required=True)
    p.add_argument("--start", required=True, help="ISO 8601 time of the first file's start")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p = fsub.add_parser("list", help="list the indexed segments (no passphrase needed)")
    _data_arg(p)
    _window_args(p, required=False)
    p.add_argument("--json", action="store_true")
    p = fsub.add_parser("export", help="decrypt and join footage into one MP4")
    _data_arg(p)
    _window_args(p, required=True)
    p.add_argument("--out", required=True, type=Path)
    _passphrase_arg(p)
    p = fsub.add_parser("prune", help="apply the retention rules now")
    _data_arg(p)
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted")
    p.add_argument("--json", action="store_true")
    p = fsub.add_parser("check", help="check and repair the vault; report every repair")
    _data_arg(p)
    p.add_argument("--json", action="store_true")
    p = fsub.add_parser("hold", help="keep footage from retention")
    _data_arg(p)
    _window_args(p, required=True)
    p.add_argument("--reason", default="owner", help="a label to release the hold by")
    p = fsub.add_parser("release", help="lift the owner's holds with this label")
    _data_arg(p)
    p.add_argument("--reason", default="owner")
    return parser


def _window_args(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--camera", required=required)
    parser.add_argument("--from", dest="start", required=required, help="ISO 8601 time")
    parser.add_argument("--to", dest="end", required=required, help="ISO 8601 time")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; print errors as one line and return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "run" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "data", "unset") is None:
        args.data = default_data_dir()
    try:
        from . import commands

        return commands.dispatch(args) or 0
    except PorchlightError as err:
        sys.stderr.write(f"porchlight: error: {err}\n")
        return err.exit_code
    except FederationError as err:
        sys.stderr.write(f"porchlight: error: {err.message}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("porchlight: interrupted\n")
        return 130


def window(args: argparse.Namespace):
    """Parse --from/--to and check their order."""
    start = parse_time(args.start, "--from") if args.start else None
    end = parse_time(args.end, "--to") if args.end else None
    check_window(start, end)
    return start, end


def print_json(value) -> None:
    """Print a value as JSON on stdout."""
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    raise SystemExit(main())
