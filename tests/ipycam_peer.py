"""A virtual ONVIF camera for the tests: ipycam streaming a moving test pattern.

Runs under ipycam's own virtualenv (.venv-ipycam), inside a network namespace that the test
created, started by tests/ipycam_fixture.py. Prints "ready" once ONVIF, RTSP and WS-Discovery
listen; stops on SIGTERM or SIGINT, and by itself after --lifetime seconds (an orphan of a killed
test run does not live on).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

import numpy as np
from ipycam import CameraConfig, IPCamera


def main() -> int:
    """Run the camera until stopped."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--ip", required=True, help="the address the camera advertises")
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--name", default="Porch Test Camera")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--lifetime", type=float, default=600.0)
    args = parser.parse_args()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    config = CameraConfig(
        name=args.name, manufacturer="Porchlight Tests", model="ipycam", local_ip=args.ip,
        username=args.user, password=args.password,
        main_width=640, main_height=360, main_fps=args.fps, main_bitrate="800K",
        sub_width=320, sub_height=180, sub_fps=args.fps, sub_bitrate="200K",
        hw_accel="cpu", show_timestamp=False,
    )
    camera = IPCamera(config)
    if not camera.start():
        print("ipycam did not start", file=sys.stderr, flush=True)
        return 1
    print("ready", flush=True)
    deadline = time.monotonic() + args.lifetime
    frame = np.zeros((360, 640, 3), dtype=np.uint8)
    n = 0
    try:
        while not stop.is_set() and time.monotonic() < deadline and camera.is_running:
            frame[:] = (40, 60, 30)
            x = (n * 8) % 560
            frame[140:220, x:x + 80] = (200, 200, 240)  # a moving block
            camera.stream(frame)
            n += 1
            time.sleep(1.0 / args.fps)
    finally:
        camera.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
