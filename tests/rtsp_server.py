"""Serve test RTSP streams on 127.0.0.1 with GStreamer's RTSP server.

Run it under Debian's own /usr/bin/python3: the `gi` bindings for GstRtspServer come from
Debian packages and cannot be imported from a virtualenv. It prints "READY <port>" once it
listens, then serves until SIGTERM or SIGINT (or until --lifetime runs out, so an orphan left
by a killed test run does not linger).

    /usr/bin/python3 tests/rtsp_server.py --port 0 --mount /cam1='( videotestsrc ... )'
    /usr/bin/python3 tests/rtsp_server.py --port 8554 --file /cam2=clip.mp4 --user u --password p

With --clients-file, the server appends "<client> <event> <unix time>" lines to that file for each
client's connection, PLAY and close, so a test can count how often a camera was dialled (a crash
loop shows there, whatever the client logs) and how long each client was actually served.
"""

from __future__ import annotations

import argparse
import itertools
import re
import signal
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ROLE = "user"
MOUNT_RE = re.compile(r"^/[\w.-]+$")


class LoopingFileFactory(GstRtspServer.RTSPMediaFactory):
    """Serve the H.264 track of an MP4 file without re-encoding, looping it forever."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def do_create_element(self, url):
        """Build `filesrc ! qtdemux ! h264parse ! rtph264pay` that rewinds at end of file."""
        bin_ = Gst.parse_launch(
            "( filesrc name=src ! qtdemux name=demux demux.video_0 ! h264parse "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        bin_.get_by_name("src").set_property("location", self.path)
        pad = bin_.get_by_name("pay0").get_static_pad("sink")
        # The pad probes hold the looper, so it lives exactly as long as this pipeline.
        _Looper(bin_.get_by_name("demux"), pad)
        return bin_


class _Looper:
    """Rewind the demuxer at end of file while the payloader sees one endless stream.

    The end of file is swallowed before the payloader, so clients never get EOS, and the
    demuxer is rewound with a flushing seek whose flush is also swallowed there: the RTP
    session and its sinks never flush, so the pipeline's running time does not reset. A pad
    offset of the looped length keeps running time, and so RTP timestamps, increasing.
    """

    def __init__(self, demux: Gst.Element, pad: Gst.Pad) -> None:
        self.demux = demux
        self.pad = pad
        self.offset = 0
        self.end = 0
        self.rewinding = False
        pad.add_probe(
            Gst.PadProbeType.EVENT_DOWNSTREAM | Gst.PadProbeType.EVENT_FLUSH, self._on_event
        )
        pad.add_probe(Gst.PadProbeType.BUFFER, self._on_buffer)

    def _on_buffer(self, pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        buffer = info.get_buffer()
        if buffer.pts != Gst.CLOCK_TIME_NONE:
            duration = buffer.duration if buffer.duration != Gst.CLOCK_TIME_NONE else 0
            self.end = max(self.end, buffer.pts + duration)
        return Gst.PadProbeReturn.OK

    def _on_event(self, pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        kind = info.get_event().type
        if kind == Gst.EventType.EOS:
            # Seek from the main loop: seeking from the streaming thread would deadlock.
            GLib.idle_add(self._rewind)
            return Gst.PadProbeReturn.DROP
        if kind in (Gst.EventType.FLUSH_START, Gst.EventType.FLUSH_STOP):
            if self.rewinding:
                if kind == Gst.EventType.FLUSH_STOP:
                    self.rewinding = False
                return Gst.PadProbeReturn.DROP
            # The server's own seek (a client's PLAY) restarts the running time at zero.
            self.offset = self.end = 0
            self.pad.set_offset(0)
        return Gst.PadProbeReturn.OK

    def _rewind(self) -> bool:
        self.offset += self.end
        self.end = 0
        self.pad.set_offset(self.offset)
        self.rewinding = True
        self.demux.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        return False


def parse_mapping(value: str, default_mount: str) -> tuple[str, str]:
    """Split "/mount=VALUE" into its parts; a bare VALUE goes to the default mount."""
    mount, sep, rest = value.partition("=")
    if sep and MOUNT_RE.match(mount):
        return mount, rest
    return default_mount, value


def build_server(args: argparse.Namespace) -> GstRtspServer.RTSPServer:
    """Create the server with its mounts and optional authentication."""
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    factories: list[tuple[str, GstRtspServer.RTSPMediaFactory]] = []
    for value in args.mount:
        path, launch = parse_mapping(value, "/cam1")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factories.append((path, factory))
    for value in args.file:
        path, filename = parse_mapping(value, "/stream")
        factories.append((path, LoopingFileFactory(filename)))
    if not factories:
        raise SystemExit("give at least one --mount or --file")
    if (args.user is None) != (args.password is None):
        raise SystemExit("--user and --password go together")
    if args.user is not None:
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
        auth = GstRtspServer.RTSPAuth()
        # One method at a time: the bindings expose the methods as an enum, not as flags.
        if args.auth == "digest":
            auth.add_digest(args.user, args.password, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        server.set_auth(auth)
    role = Gst.Structure.new_from_string(
        f"{ROLE}, {GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS}=(boolean)true, "
        f"{GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT}=(boolean)true"
    )
    for path, factory in factories:
        # Shared: every client of a mount sees the same stream, like a real camera.
        factory.set_shared(True)
        if args.user is not None:
            factory.add_role_from_structure(role)
        mounts.add_factory(path, factory)
    return server


class ClientLog:
    """Append each client's connection, PLAY and close to a file (the main loop is the only writer)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.numbers = itertools.count(1)

    def on_connected(self, server, client) -> None:
        """Number the client and follow its PLAY and close."""
        number = next(self.numbers)
        self._write(number, "connected")
        client.connect("play-request", lambda *_: self._write(number, "play"))
        client.connect("closed", lambda *_: self._write(number, "closed"))

    def _write(self, number: int, event: str) -> None:
        with open(self.path, "a") as handle:
            handle.write(f"{number} {event} {time.time():.6f}\n")


def main(argv: list[str] | None = None) -> int:
    """Serve until told to stop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--mount", action="append", default=[], metavar="/PATH=LAUNCH",
                        help="serve a gst-launch line whose payloader is named pay0")
    parser.add_argument("--file", action="append", default=[], metavar="[/PATH=]FILE.mp4",
                        help="serve an MP4's H.264 track in a loop (default mount /stream)")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--auth", choices=("basic", "digest"), default="digest",
                        help="RTSP authentication method when --user is given")
    parser.add_argument("--clients-file", help="log each client's connection, PLAY and close here")
    parser.add_argument("--lifetime", type=float, default=0,
                        help="exit after this many seconds (0: never)")
    args = parser.parse_args(argv)

    Gst.init(None)
    server = build_server(args)
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    if args.lifetime > 0:
        GLib.timeout_add(int(args.lifetime * 1000), loop.quit)
    if args.clients_file:
        server.connect("client-connected", ClientLog(args.clients_file).on_connected)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
