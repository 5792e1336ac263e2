"""Helpers for the video pages' tests: hubs whose synthetic cameras stamp each frame's capture
time, and a pixel check on a <video> in Chromium (viewers are added with conftest's add_viewer)."""

from __future__ import annotations

from tests.hub.web.conftest import WebHub

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
