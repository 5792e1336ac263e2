// Recordings: play any moment of a camera's day. Each segment comes from the hub decrypted with
// this person's key and remuxed to fragmented MP4 (in memory, by stream copy); the page places
// it on the day's timeline with Media Source Extensions, so the player's own seek bar spans the
// whole day. Without MSE, the player falls back to a one-minute MP4 from the export link.
"use strict";

(function () {
  const figure = document.getElementById("player");
  if (!figure) return;
  const video = document.getElementById("playback");
  const state = document.getElementById("playback-state");
  const timeline = document.getElementById("timeline");
  const playhead = document.getElementById("playhead");
  const segments = JSON.parse(document.getElementById("segments").textContent);
  const length = Number(figure.dataset.length);
  const MS = window.MediaSource || window.ManagedMediaSource;
  const loaded = new Map(); // segment id -> Promise of its append
  let buffer = null;
  let ready = null;
  let appending = Promise.resolve();
  let type = null;

  function say(text) { if (state.textContent !== text) state.textContent = text; }

  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const pad = (n) => String(n).padStart(2, "0");
    return pad(Math.floor(s / 3600)) + ":" + pad(Math.floor(s / 60) % 60) + ":" + pad(s % 60);
  }

  function segmentFrom(t) {
    // The segment holding t, or the next one after a gap.
    return segments.find((s) => s.end > t + 0.05) || null;
  }

  function open() {
    if (ready) return ready;
    const source = new MS();
    video.src = URL.createObjectURL(source);
    ready = new Promise((resolve) => {
      source.addEventListener("sourceopen", () => {
        URL.revokeObjectURL(video.src);
        source.duration = length;
        resolve(source);
      }, { once: true });
    });
    return ready;
  }

  function waitIdle() {
    return new Promise((resolve) => {
      if (!buffer.updating) return resolve();
      buffer.addEventListener("updateend", () => resolve(), { once: true });
    });
  }

  function fetchSegment(segment) {
    if (loaded.has(segment.id)) return loaded.get(segment.id);
    const job = fetch(figure.dataset.base + segment.id + ".mp4", { credentials: "same-origin" })
      .then((reply) => {
        if (reply.ok) {
          type = type || reply.headers.get("Content-Type");
          return reply.arrayBuffer();
        }
        return reply.text().then((text) => { throw new Error(text || reply.statusText); });
      })
      .then((data) => {
        // Appends go one at a time, each placed at its segment's moment in the day.
        appending = appending.then(async () => {
          const source = await open();
          if (!buffer) buffer = source.addSourceBuffer(type);
          await waitIdle();
          buffer.timestampOffset = segment.start;
          buffer.appendBuffer(data);
          await waitIdle();
        });
        return appending;
      })
      .catch((err) => {
        loaded.delete(segment.id);
        say("Cannot play " + clock(segment.start) + ": " + err.message);
        throw err;
      });
    loaded.set(segment.id, job);
    return job;
  }

  function buffered(t) {
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= t + 0.01 && t < video.buffered.end(i) - 0.05) return true;
    }
    return false;
  }

  async function playFrom(t, play = true) {
    const segment = segmentFrom(t);
    if (!segment) { say("No footage after " + clock(t) + " on this day."); return; }
    const at = Math.max(t, segment.start);
    say("Loading " + clock(at) + "…");
    try {
      await fetchSegment(segment);
    } catch (err) {
      return;
    }
    video.currentTime = at + 0.001;
    if (play) video.play().catch(() => {});
    else say("Ready at " + clock(at) + ".");
  }

  function ahead() {
    // Fetch the next segment before the current one runs out; jump gaps in the recording.
    const t = video.currentTime;
    const current = segmentFrom(t);
    if (!current) return;
    if (!buffered(t) && !video.seeking && loaded.has(current.id) && current.start > t) {
      video.currentTime = current.start + 0.001;
    }
    if (current.end - t < 4) {
      const next = segments[segments.indexOf(current) + 1];
      if (next) fetchSegment(next).catch(() => {});
    }
    if (buffer && !buffer.updating && video.buffered.length) {
      const first = video.buffered.start(0);
      if (t - first > 120) {
        buffer.remove(0, t - 60);
        for (const s of segments) if (s.end < t - 60) loaded.delete(s.id);
      }
    }
  }

  function fallback(t) {
    // No MSE (an old phone browser): play one minute from the export link.
    const day = new URLSearchParams(location.search).get("day") || "";
    const exportForm = document.getElementById("export");
    const to = Math.min(length - 1, t + 60);
    video.src = exportForm.action + "?day=" + encodeURIComponent(day || exportForm.day.value) +
      "&from=" + clock(t) + "&to=" + clock(to);
    video.play().catch(() => {});
  }

  function go(t, play = true) {
    playhead.setAttribute("x1", t);
    playhead.setAttribute("x2", t);
    if (MS) playFrom(t, play); else if (play) fallback(t);
  }

  video.addEventListener("timeupdate", () => {
    playhead.setAttribute("x1", video.currentTime);
    playhead.setAttribute("x2", video.currentTime);
    if (!video.paused) say("Playing " + clock(video.currentTime) + ".");
    ahead();
  });
  video.addEventListener("seeking", () => {
    if (MS && !buffered(video.currentTime)) playFrom(video.currentTime, !video.paused);
  });
  video.addEventListener("waiting", ahead);
  function snap(t, tolerance) {
    // A pixel of a day-wide timeline is minutes long: a click near footage plays that footage.
    let best = null;
    let distance = tolerance;
    for (const s of segments) {
      const d = t < s.start ? s.start - t : t > s.end ? t - s.end : 0;
      if (d <= distance) { best = s; distance = d; }
    }
    return best && (t < best.start || t >= best.end) ? best.start : t;
  }

  timeline.addEventListener("click", (event) => {
    const box = timeline.getBoundingClientRect();
    const perPixel = length / box.width;
    go(snap(((event.clientX - box.left) / box.width) * length, 3 * perPixel));
  });
  document.getElementById("goto").addEventListener("submit", (event) => {
    event.preventDefault();
    const [h, m, s] = document.getElementById("at").value.split(":").map(Number);
    go(h * 3600 + m * 60 + (s || 0));
  });
  document.querySelectorAll("a[data-at]").forEach((link) => {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      go(Number(link.dataset.at));
    });
  });
  // Show the first picture at once; playing waits for a click.
  if (segments.length) go(Number(figure.dataset.start), false);
})();
