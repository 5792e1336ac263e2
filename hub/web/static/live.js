// Live view: the camera's fragmented MP4 from the hub's WebSocket into Media Source Extensions
// (stream copy, never re-encoded). Snapshots refreshed every second are the fallback when the
// browser has no MSE, cannot play the codec, or the stream fails; the page keeps reconnecting.
"use strict";

(function () {
  const figure = document.getElementById("live");
  if (!figure) return;
  const video = document.getElementById("live-video");
  const img = document.getElementById("snapshot");
  const state = document.getElementById("live-state");
  const MS = window.MediaSource || window.ManagedMediaSource;
  let snapshotTimer = null;
  let retry = 1000;

  function say(text) { if (state.textContent !== text) state.textContent = text; }

  function showSnapshots(why) {
    video.hidden = true;
    img.hidden = false;
    say(why + " Showing the latest picture, refreshed every second.");
    if (snapshotTimer) return;
    snapshotTimer = setInterval(() => {
      const next = new Image();
      next.onload = () => { img.src = next.src; };
      next.src = figure.dataset.snapshot + "?t=" + Date.now();
    }, 1000);
  }

  function showVideo() {
    if (snapshotTimer) { clearInterval(snapshotTimer); snapshotTimer = null; }
    video.hidden = false;
    img.hidden = true;
    say("Live.");
    retry = 1000;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + figure.dataset.socket);
    socket.binaryType = "arraybuffer";
    let source = null;
    let buffer = null;
    let queue = [];
    let watchdog = null;
    let giveUp = false;

    function pump() {
      if (!buffer || buffer.updating || !queue.length) return;
      try {
        buffer.appendBuffer(queue.shift());
      } catch (err) {
        socket.close();
      }
    }

    function chase() {
      // Stay at the live edge: left alone, the player lets the delay grow.
      const ranges = video.buffered;
      if (!ranges.length) return;
      const start = ranges.start(ranges.length - 1);
      const end = ranges.end(ranges.length - 1);
      const lag = end - video.currentTime;
      if (lag > 1.0 || video.currentTime < start) video.currentTime = Math.max(start, end - 0.1);
      video.playbackRate = lag > 0.4 ? 1.1 : 1.0;
      if (video.paused) video.play().catch(() => {});
      if (!buffer.updating && end - ranges.start(0) > 30) buffer.remove(0, end - 10);
    }

    function arm() {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => socket.close(), 5000);
    }

    socket.onopen = arm;
    socket.onmessage = (message) => {
      arm();
      if (typeof message.data === "string") {
        const type = message.data;
        if (!type || !MS.isTypeSupported(type)) {
          giveUp = true;
          showSnapshots("This browser cannot play this camera's video codec.");
          socket.close();
          return;
        }
        source = new MS();
        video.src = URL.createObjectURL(source);
        source.addEventListener("sourceopen", () => {
          URL.revokeObjectURL(video.src);
          buffer = source.addSourceBuffer(type);
          buffer.addEventListener("updateend", () => { chase(); pump(); });
          pump();
        }, { once: true });
        return;
      }
      queue.push(message.data);
      pump();
    };
    socket.onclose = (event) => {
      clearTimeout(watchdog);
      buffer = null;
      queue = [];
      if (giveUp) return;
      if (event.code === 1008) {
        showSnapshots("Signed out.");
        return;
      }
      // 1013: the camera is not running, or has all the viewers it serves; the hub says which.
      const why = event.code === 1013 && event.reason ?
        event.reason.charAt(0).toUpperCase() + event.reason.slice(1) + "." :
        "The live stream is not available.";
      showSnapshots(why);
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    };
  }

  video.addEventListener("playing", showVideo);
  if (!MS) {
    showSnapshots("This browser has no Media Source Extensions.");
    return;
  }
  connect();
})();
