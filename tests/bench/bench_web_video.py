"""Web video benchmark: live latency from capture to the frame shown in Chromium, the hub's CPU
per live viewer, and playback's time from click to first frame.

A real `porchlight run` records a synthetic camera that stamps each frame's capture time into
its picture (`stamp = true`); the page's <video> is drawn into a canvas and the stamp read back.
Baselines, measured in the same run: the hub's own share of the latency (capture to the
fragment arriving at a plain WebSocket client), the hub's CPU recording with no viewer, and
the time to fetch the same segment with a plain HTTPS request.

Run: python -m tests.bench.bench_web_video [--seconds 20] [--viewers 4] [--clicks 5]
Prints figures and ratios; never asserts a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import av

from tests.hub.web.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LAPTOP,
    PASSPHRASE,
    browser_sign_in,
    page_for,
    run_async,
    sign_in,
)
from tests.hub.web.video import GRAB, stamped_hub

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _stamp_age_ms(stamp: int, now_ms: int) -> int:
    return (now_ms - stamp) % 2**32


def _boxes(data: bytes) -> dict[bytes, bytes]:
    found, at = {}, 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        found[kind] = data[at + 8:at + size]
        at += size
    return found


def _avcc(init: bytes) -> bytes:
    at = init.find(b"avcC")
    size = struct.unpack(">I", init[at - 4:at])[0]
    return init[at + 4:at - 4 + size]


async def hub_side_latency(hub, seconds: float) -> list[float]:
    """Capture to fragment received by a plain WebSocket client, in ms (decoded to read stamps)."""
    from plugins.cameras.scene import read_stamp

    ages: list[float] = []
    async with hub.client() as client:
        await sign_in(client, "owner", PASSPHRASE)
        async with client.ws_connect("/cameras/porch/live") as socket:
            await socket.receive_str(timeout=30)
            init = await socket.receive_bytes(timeout=30)
            decoder = av.CodecContext.create("h264", "r")
            decoder.extradata = _avcc(init)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                fragment = await socket.receive_bytes(timeout=30)
                received_ms = int(time.time() * 1000)
                for frame in decoder.decode(av.Packet(_boxes(fragment)[b"mdat"])):
                    stamp = read_stamp(frame.to_ndarray(format="rgb24"))
                    if stamp is not None:
                        ages.append(_stamp_age_ms(stamp, received_ms))
    return ages


async def hold_viewers(hub, count: int, ready: threading.Event, stop: threading.Event) -> int:
    """Sign in `count` live viewers, set `ready` once all stream, read until `stop`; return bytes."""
    import asyncio

    received = 0
    streaming = 0

    async def viewer() -> None:
        nonlocal received, streaming
        async with hub.client() as client:
            await sign_in(client, "owner", PASSPHRASE)  # an scrypt each: before the window
            async with client.ws_connect("/cameras/porch/live") as socket:
                await socket.receive(timeout=30)
                streaming += 1
                if streaming == count:
                    ready.set()
                while not stop.is_set():
                    message = await socket.receive(timeout=30)
                    received += len(message.data) if isinstance(message.data, bytes) else 0

    await asyncio.gather(*(viewer() for _ in range(count)))
    return received


def cpu_over(pid: int, seconds: float) -> float:
    """Return the process's CPU use (fraction of one core) over a window."""
    before, began = _cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return (_cpu_s(pid) - before) / (time.monotonic() - began)


def cpu_with_viewers(hub, pid: int, count: int, seconds: float) -> tuple[float, float]:
    """Return the hub's CPU use with `count` live viewers, and the bytes per second they got."""
    ready, stop = threading.Event(), threading.Event()
    result: list = []
    thread = threading.Thread(target=lambda: result.append(
        run_async(hold_viewers(hub, count, ready, stop))))
    thread.start()
    if not ready.wait(120):
        raise RuntimeError("the live viewers did not start")
    used = cpu_over(pid, seconds)
    stop.set()
    thread.join()
    return used, (result[0] if result else 0) / seconds


def browser_latency(browser, hub, seconds: float) -> list[float]:
    """Capture to the frame shown in Chromium's <video>, in ms."""
    ages: list[float] = []
    with page_for(browser, hub, LAPTOP) as page:
        browser_sign_in(page, hub)
        page.goto(hub.url + "/cameras/porch")
        page.evaluate(f"window.__grab = {GRAB}")
        page.wait_for_function("() => window.__grab('live-video')", timeout=30000)
        page.wait_for_timeout(2000)  # settle at the live edge
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            grab = page.evaluate("() => window.__grab('live-video')")
            if grab and grab["stamp"] is not None:
                ages.append(_stamp_age_ms(grab["stamp"], grab["now"]))
            page.wait_for_timeout(97)
        assert page.console_errors == [], page.console_errors
    return ages


PLAY_FIRST_FRAME = """(clock) => new Promise((done) => {
  const video = document.getElementById('playback');
  const form = document.getElementById('goto');
  document.getElementById('at').value = clock;
  const began = performance.now();
  const before = video.currentTime;
  const check = () => video.requestVideoFrameCallback((now, meta) => {
    if (!video.paused && Math.abs(video.currentTime - before) > 0.5) done(performance.now() - began);
    else check();
  });
  check();
  form.requestSubmit();
})"""


def playback_first_frame(browser, hub, clocks: list[str]) -> list[float]:
    """Click "Play" at each time of day on a fresh page; return ms to the first frame shown."""
    times = []
    for clock in clocks:
        with page_for(browser, hub, LAPTOP) as page:
            browser_sign_in(page, hub)
            page.goto(hub.url + "/recordings/porch")
            page.wait_for_function(
                "() => document.getElementById('playback').readyState >= 2", timeout=30000)
            times.append(page.evaluate(PLAY_FIRST_FRAME, clock))
            assert page.console_errors == [], page.console_errors
    return times


async def fetch_segment_ms(hub, segment_ids: list[str]) -> list[float]:
    """Time a plain HTTPS GET of each segment as the player asks for it (decrypt + remux + send)."""
    times = []
    async with hub.client() as client:
        await sign_in(client, "owner", PASSPHRASE)
        for segment_id in segment_ids:
            began = time.perf_counter()
            async with client.get(f"/recordings/porch/segments/{segment_id}.mp4") as reply:
                assert reply.status == 200
                await reply.read()
            times.append((time.perf_counter() - began) * 1000)
    return times


def _segments(root: Path):
    from hub.datadir import DataDir
    from hub.db import connect
    from hub.vault.store import Vault

    db = connect(root / "porchlight.db")
    try:
        return [s for s in Vault(DataDir(root), db, []).segments("porch")
                if s.media_type == "video/mp4"]
    finally:
        db.conn.close()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) >= 2 else _median(values)


def main(seconds: float = 20.0, viewers: int = 4, clicks: int = 5,
         segment_seconds: float = 10.0) -> dict:
    """Measure and print the figures; return them."""
    from playwright.sync_api import sync_playwright

    results: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        hub = stamped_hub(Path(folder) / "bench", cameras=("porch",))
        config = hub.root / "config.toml"
        config.write_text(config.read_text().replace(
            "segment_seconds = 2.0", f"segment_seconds = {segment_seconds}"))
        hub.start()
        try:
            pid = hub.proc.pid
            hub_ms = run_async(hub_side_latency(hub, seconds / 2))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    shown_ms = browser_latency(browser, hub, seconds)
                    idle = cpu_over(pid, seconds)
                    watched, rate = cpu_with_viewers(hub, pid, viewers, seconds)
                    # Playback: moments inside segments sealed by now, one fresh page per click.
                    sealed = [s for s in _segments(hub.root)[:-1]
                              if s.start.replace(microsecond=0) + timedelta(seconds=1) < s.end
                              ][-clicks:]
                    clocks = [(s.start.replace(microsecond=0) + timedelta(seconds=1))
                              .astimezone().strftime("%H:%M:%S") for s in sealed]
                    first_frame = playback_first_frame(browser, hub, clocks)
                    fetched = run_async(fetch_segment_ms(hub, [s.id for s in sealed]))
                finally:
                    browser.close()
        finally:
            hub.stop()
    per_viewer = (watched - idle) / viewers
    results.update({
        "live_latency_ms_median": _median(shown_ms), "live_latency_ms_p90": _p90(shown_ms),
        "hub_side_latency_ms_median": _median(hub_ms),
        "cpu_idle_core": idle, "cpu_per_viewer_core": per_viewer,
        "playback_first_frame_ms_median": _median(first_frame),
        "playback_first_frame_ms_max": max(first_frame) if first_frame else float("nan"),
        "segment_fetch_ms_median": _median(fetched),
    })
    print(f"live latency, capture to frame shown in Chromium: median "
          f"{results['live_latency_ms_median']:.0f} ms, p90 {results['live_latency_ms_p90']:.0f} ms"
          f" ({len(shown_ms)} samples; target < 1500 ms)")
    print(f"  baseline, capture to fragment at a plain WebSocket client: median "
          f"{results['hub_side_latency_ms_median']:.0f} ms; browser/baseline "
          f"{results['live_latency_ms_median'] / max(1.0, results['hub_side_latency_ms_median']):.2f}x")
    print(f"hub CPU: {idle * 100:.1f}% of a core recording with no viewer, "
          f"{watched * 100:.1f}% with {viewers} live viewers: {per_viewer * 100:.2f}% per viewer "
          f"({per_viewer / idle if idle else float('nan'):.3f}x the no-viewer baseline; "
          f"{rate / viewers / 1000:.0f} kB/s to each viewer)")
    print(f"playback, click to first frame in Chromium: median "
          f"{results['playback_first_frame_ms_median']:.0f} ms, max "
          f"{results['playback_first_frame_ms_max']:.0f} ms over {len(first_frame)} clicks "
          f"({segment_seconds:.0f} s segments; target < 1000 ms)")
    print(f"  baseline, one plain HTTPS GET of the same segment (decrypt + remux + send): median "
          f"{results['segment_fetch_ms_median']:.0f} ms; click/baseline "
          f"{results['playback_first_frame_ms_median'] / max(1.0, results['segment_fetch_ms_median']):.2f}x")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--clicks", type=int, default=5)
    args = parser.parse_args()
    main(args.seconds, args.viewers, args.clicks)
    sys.exit(0)
