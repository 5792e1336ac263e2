"""Helpers for the video pages' tests: hubs whose synthetic cameras stamp each frame's capture
time, viewers added through the settings page, and a pixel check on a <video> in Chromium."""

from __future__ import annotations

import asyncio
import threading

from tests.hub.web.conftest import PASSPHRASE, WebHub, csrf_of, sign_in

ANN = "ann-passphrase-long"
# Draw the <video> into a canvas; return a few thousand sampled pixels and the stamped capture
# time (synthetic cameras with `stamp = true` draw it as 40 cells across the top).
GRAB = """(id) => {
  const v = document.getElementById(id);
  if (!v || v.readyState < 2 || !v.videoWidth) return null;
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  const sample = [];
  for (let i = 0; i < d.length; i += 4 * 97) sample.push(d[i], d[i + 1], d[i + 2]);
  const cell = Math.max(4, Math.floor(c.width / 40));
  const bits = [];
  for (let k = 0; k < 40; k++) {
    const o = 4 * (Math.floor(cell / 2) * c.width + k * cell + Math.floor(cell / 2));
    bits.push((d[o] + d[o + 1] + d[o + 2]) / 3 > 128 ? 1 : 0);
  }
  let value = 0, check = 0;
  for (let k = 0; k < 32; k++) value = value * 2 + bits[k];
  for (let k = 32; k < 40; k++) check = check * 2 + bits[k];
  const sum = ((value >>> 24) & 255) + ((value >>> 16) & 255) + ((value >>> 8) & 255) + (value & 255);
  return {sample, stamp: sum % 256 === check ? value : null, now: Date.now(), time: v.currentTime};
}"""


def run_async(coroutine):
    """Run a coroutine in a thread of its own (Playwright's sync API owns this thread's loop)."""
    result: list = []
    errors: list = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as err:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(err)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0] if result else None


async def add_viewer(hub: WebHub, name: str, passphrase: str, *cameras: str) -> None:
    """Add a viewer through the settings page and share cameras with them."""
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/settings")
        async with owner.post("/settings/people", data={
                "csrf": token, "name": name, "role": "viewer", "passphrase": passphrase}) as reply:
            assert reply.status == 200
        for camera in cameras:
            async with owner.post(f"/settings/people/{name}/share", data={
                    "csrf": token, "camera": camera, "shared": "yes"}) as reply:
                assert reply.status == 200


def stamped_hub(root, cameras=("porch", "garage")) -> WebHub:
    """A hub whose synthetic cameras stamp each frame's capture time, with 2 s segments."""
    hub = WebHub(root, cameras=cameras)
    config = hub.root / "config.toml"
    config.write_text(config.read_text()
                      .replace('type = "synthetic"', 'type = "synthetic"\nstamp = true')
                      .replace("segment_seconds = 10.0", "segment_seconds = 2.0"))
    return hub


def grab_moving(page, video_id: str, timeout_ms: float = 20000) -> tuple[dict, dict]:
    """Return two grabs of a playing video whose pixels and stamped capture times differ."""
    page.evaluate(f"window.__grab = {GRAB}")
    first = page.wait_for_function("id => window.__grab(id)", arg=video_id,
                                   timeout=timeout_ms).json_value()
    later = page.wait_for_function(
        """([id, sample, stamp]) => {
             const now = window.__grab(id);
             if (!now || now.stamp === stamp) return null;
             let diff = 0;
             for (let i = 0; i < sample.length; i++) diff += Math.abs(sample[i] - now.sample[i]);
             return diff / sample.length > 1 ? now : null;
           }""", arg=[video_id, first["sample"], first["stamp"]], timeout=timeout_ms)
    return first, later.json_value()
